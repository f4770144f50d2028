"""Rough edges a hostile user found (issue 24, items 5, 9, 12, 13 and ``--version``), each
through the real CLI on a real library: SQLite, FAISS and the TFLite (or Keras) backbone."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import CLI, REPO, make_photo, run_finder


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def indexed(cli: CLI, photo_tree: Path, model_args: list[str]) -> CLI:
    """``cli``'s library with ``photo_tree`` indexed and class red learned from two reds."""
    cli("index", str(photo_tree), *model_args, "-q")
    reds = sorted((photo_tree / "red").glob("*.jpg"))
    cli("learn", "red", str(reds[0]), str(reds[1]))
    return cli


# -- item 5: an empty path ---------------------------------------------------------------------
EMPTY_PATHS = [
    ["find", "red", "--copy", ""],
    ["find", "red", "--link", ""],
    ["find", "red", "--under", ""],
    ["dupes", "--under", ""],
    ["index", ""],
    ["learn", "red", ""],
    ["learn", "red", "--not", ""],
    ["similar", ""],
    ["status", "--library", ""],
]


@pytest.mark.parametrize("args", EMPTY_PATHS, ids=lambda a: " ".join(a).replace("''", "EMPTY"))
def test_an_empty_path_is_refused_in_one_line(
    indexed: CLI, args: list[str], tmp_path: Path
) -> None:
    here = tmp_path / "here"
    here.mkdir()  # the current folder: --copy '' would have copied the answer into it
    full = args if "--library" in args else [*args, "--library", str(indexed.library)]
    result = run_finder(*full, cwd=here, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result
    line = _one_line(result.stderr.decode())
    assert line.startswith("finder: error: ") and "an empty path names nothing" in line, line
    assert list(here.iterdir()) == [] and result.stdout == b""


# -- item 9: a path that is not a library -------------------------------------------------------
NOT_A_LIBRARY_COMMANDS = [
    ["status"],
    ["classes"],
    ["check"],
    ["repair"],
    ["dupes"],
    ["find", "red"],
    ["learn", "red", "PHOTO"],
    ["index", "ROOT"],
]


@pytest.mark.parametrize("args", NOT_A_LIBRARY_COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("kind", ["file", "folder of other files"])
def test_a_path_that_is_not_a_library_is_refused_and_left_alone(
    tmp_path: Path, photo_tree: Path, model_args: list[str], args: list[str], kind: str
) -> None:
    if kind == "file":
        not_library = tmp_path / "passwd"
        not_library.write_text("root:x:0:0:root:/root:/bin/bash\n")
    else:
        not_library = tmp_path / "documents"
        not_library.mkdir()
        (not_library / "letter.txt").write_text("dear finder,\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    photo = str(next((photo_tree / "red").glob("*.jpg")))
    full = [{"PHOTO": photo, "ROOT": str(photo_tree)}.get(a, a) for a in args]
    extra = model_args if args[0] == "index" else []
    result = CLI(not_library)(*full, *extra, ok=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = _one_line(result.stderr)
    assert f"{not_library} is not a finder library" in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written there


def test_an_empty_or_new_folder_still_becomes_a_library(
    tmp_path: Path, photo_tree: Path, model_args: list[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"\0")
    for folder in (empty, tmp_path / "new"):
        assert CLI(folder).json("index", str(photo_tree), *model_args, "-q")["embedded"] == 13


# -- item 12: messages --------------------------------------------------------------------------
def test_views_on_an_existing_library_names_the_view_count(indexed: CLI, photo_tree: Path) -> None:
    result = indexed("index", str(photo_tree), "--views", "4", ok=False)
    assert result.exit_code != 0
    line = _one_line(result.stderr)
    assert "1 view an image" in line and "4 views" in line and "--views" in line, line
    assert "backbone" not in line, line  # the backbone is the same: only the views differ
    # the library is as it was
    assert indexed.json("status")["images"] == 13


def test_check_on_a_damaged_manifest_points_to_repair_which_mends_it(
    indexed: CLI, photo_tree: Path
) -> None:
    manifest = indexed.library / "vectors" / "manifest.json"
    assert manifest.is_file()
    manifest.write_text('{"dim": ')  # cut short, as a crash of a hand edit leaves it
    result = indexed("check", ok=False)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    said = result.stdout + result.stderr
    assert "finder repair" in said and "delete" not in said, said
    indexed("repair")
    indexed("index", str(photo_tree), "-q")
    assert indexed("check").stdout.strip() == "no problems found"
    assert len(indexed.json("find", "red", "--top", "13")) == 13
    assert len(_examples(indexed, "red")) == 2


def test_a_reader_that_leaves_ends_the_command_quietly(indexed: CLI) -> None:
    """``finder find red | head -1``: the reader has gone before finder writes; finder says
    nothing and exits 0, as ``ls | head`` does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "finder", "find", "red", "--top", "13"]
        + ["--library", str(indexed.library)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves at once: every write finder makes meets EPIPE
    stderr = proc.stderr.read()
    assert proc.wait(timeout=600) == 0, stderr
    assert stderr == b""
    shell = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -1', "finder", sys.executable, "-m"]
        + ["finder", "find", "red", "--top", "13", "--library", str(indexed.library)],
        cwd=REPO,
        capture_output=True,
    )
    assert shell.returncode == 0 and shell.stderr == b"", shell
    assert len(shell.stdout.splitlines()) == 1


def test_an_empty_answer_says_why_on_stderr(indexed: CLI, photo_tree: Path) -> None:
    threshold = indexed.json("classes")[0]["threshold"]
    nothing = photo_tree / "blue"  # no red photo passes the cut-off among the blue ones
    assert indexed.json("find", "red", "--under", str(nothing)) == []
    result = indexed("find", "red", "--under", str(nothing))
    assert result.exit_code == 0 and result.stdout == ""
    assert _one_line(result.stderr) == (
        f"finder: no photo of red above the cut-off {threshold:.2f} among the photos that pass "
        "the filters; --top 20 shows the best anyway"
    )
    result = indexed("find", "red", "--min-prob", "1")
    assert result.exit_code == 0 and result.stdout == ""
    assert _one_line(result.stderr) == (
        "finder: no photo of red at or above 1; --top 20 shows the best anyway"
    )
    assert indexed("find", "red", "--min-prob", "1", "--json").stderr == ""  # JSON: [] says it
    assert len(indexed("find", "red", "--top", "20").stdout.splitlines()) == 13


def test_under_a_file_is_the_same_message_from_find_and_dupes(
    indexed: CLI, photo_tree: Path
) -> None:
    a_file = next((photo_tree / "red").glob("*.jpg"))
    lines = []
    for args in (["find", "red"], ["dupes"]):
        result = indexed(*args, "--under", str(a_file), ok=False)
        assert result.exit_code == 2 and result.stdout == ""
        lines.append(_one_line(result.stderr))
    assert lines[0] == lines[1] == f"finder: error: --under: not a folder: {a_file}", lines
    missing = photo_tree / "nowhere"
    for args in (["find", "red"], ["dupes"]):
        result = indexed(*args, "--under", str(missing), ok=False)
        assert _one_line(result.stderr) == f"finder: error: --under: no such folder: {missing}"


# -- item 13: learning from a folder with unreadable photos -------------------------------------
def test_learning_from_a_folder_skips_what_cannot_be_read(indexed: CLI, tmp_path: Path) -> None:
    folder = tmp_path / "cats"
    for i in range(3):
        make_photo(folder / f"{i}.jpg", "red", seed=200 + i)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    (folder / "empty.png").write_bytes(b"")
    result = indexed("learn", "c", str(folder))
    said = result.stderr.splitlines()
    assert f"finder: skipped {folder / 'broken.jpg'}: " in "\n".join(said), result.stderr
    assert any(line.startswith(f"finder: skipped {folder / 'empty.png'}: ") for line in said)
    assert sorted(p for p, _ in _examples(indexed, "c")) == [
        str(folder / f"{i}.jpg") for i in range(3)
    ]
    assert indexed.json("classes")[0]["examples"] == 3  # c, then red

    # only a class with no readable example fails, and is not made
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"garbage")
    (bad / "b.jpg").write_bytes(b"")
    result = indexed("learn", "d", str(bad), ok=False)
    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert line.startswith(f"finder: error: no photo in the folder {bad} can be read ("), line
    assert f"{bad / 'a.jpg'}: " in line and ", and 1 more)" in line, line
    assert [c["name"] for c in indexed.json("classes")] == ["c", "red"]
    # a class that has examples already takes an unreadable folder as nothing new
    assert indexed.json("learn", "c", str(bad))["examples"] == 3


def _examples(cli: CLI, name: str) -> list[tuple[str, str]]:
    return [(r["path"], r["label"]) for r in cli.json("classes", "--examples", name)]


# -- finder --version ---------------------------------------------------------------------------
def test_version_is_the_installed_package_s() -> None:
    result = run_finder("--version", cwd=REPO)
    assert result.returncode == 0 and result.stderr == b""
    assert result.stdout.decode().strip() == f"finder {version('finder')}"
