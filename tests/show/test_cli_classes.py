"""Classes from the terminal (issue 24 item 15): `learn --drop`, `rename`, `forget` asking first
on a terminal, `classes --forgotten`, `restore`, `classes --export` and `learn --import`."""

from __future__ import annotations

import json
import os
import pty
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI, REPO, make_photo


@pytest.fixture
def taught(cli, photo_tree: Path, model_args: list[str]) -> CLI:
    cli("index", str(photo_tree), *model_args, "--quiet")
    red = [str(photo_tree / "red" / f"{i}.jpg") for i in range(3)]
    cli("learn", "red", *red, "--not", str(photo_tree / "blue" / "0.jpg"))
    return cli


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finder: error:"), result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_learn_drop_takes_back_marks(taught: CLI, photo_tree: Path) -> None:
    cli = taught
    blue, red2 = str(photo_tree / "blue" / "0.jpg"), str(photo_tree / "red" / "2.jpg")
    done = cli("learn", "red", "--drop", blue, "--drop", red2)
    assert "2 examples and 0 counter-examples" in done.stdout
    assert "took back 2 marks" in done.stderr
    assert [e["path"] for e in cli.json("classes", "--examples", "red")] == [
        str(photo_tree / "red" / "0.jpg"),
        str(photo_tree / "red" / "1.jpg"),
    ]
    _one_line_error(cli("learn", "red", "--drop", blue, ok=False), "--drop", "not an example")
    _one_line_error(cli("learn", "red", "--drop", "", ok=False), "--drop", "empty path")
    _one_line_error(
        cli("learn", "red", "--drop", str(photo_tree / "red"), ok=False),
        "every example",
        "finder forget red",
    )
    assert cli.json("classes")[0]["examples"] == 2  # refused: unchanged


def test_rename(taught: CLI, photo_tree: Path) -> None:
    cli = taught
    before = cli.json("find", "red")
    assert cli("rename", "red", "crimson").stdout == "renamed 'red' to 'crimson'\n"
    assert cli.json("find", "crimson") == before
    assert [c["name"] for c in cli.json("classes")] == ["crimson"]
    cli("learn", "blue", str(photo_tree / "blue" / "1.jpg"))
    refused = cli("rename", "crimson", "blue", ok=False)
    _one_line_error(refused, "'blue' exists already")
    assert refused.exit_code == 2
    _one_line_error(cli("rename", "red", "x", ok=False), "no class named 'red'")
    assert cli.json("rename", "blue", "navy")["name"] == "navy"


def test_forget_goes_ahead_without_a_terminal_and_restore_brings_it_back(taught: CLI) -> None:
    cli = taught
    learned = cli.json("classes")
    done = cli("forget", "red")  # CliRunner's stdin is no terminal: no question
    assert done.stdout == "forgot 'red'\n" and "finder restore red" in done.stderr
    assert cli.json("classes") == []
    assert cli("classes").stdout.startswith("no classes yet")
    (kept,) = cli.json("classes", "--forgotten")
    assert (kept["name"], kept["examples"], kept["negatives"]) == ("red", 3, 1)
    assert 29.9 * 86400 < kept["kept_until"] - kept["forgotten_at"] <= 30 * 86400
    assert "red\t3 examples\t1 counter-examples\tforgotten " in cli("classes", "--forgotten").stdout
    _one_line_error(cli("find", "red", ok=False), "no class named 'red'")

    assert cli("restore", "red").stdout.startswith("restored 'red': 3 examples and 1 counter")
    assert cli.json("classes") == learned
    assert cli("classes", "--forgotten").stdout.startswith("no forgotten classes")
    _one_line_error(cli("restore", "red", ok=False), "'red' is not forgotten")
    _one_line_error(cli("restore", "green", ok=False), "no forgotten class named 'green'")


def test_a_name_learned_anew_then_restore_says_to_rename_first(
    taught: CLI, photo_tree: Path
) -> None:
    cli = taught
    cli("forget", "red")
    cli("learn", "red", str(photo_tree / "red" / "3.jpg"))
    refused = cli("restore", "red", ok=False)
    _one_line_error(refused, "learned anew since it was forgotten", "(`finder rename red NEW`)")
    assert refused.exit_code == 2
    cli("rename", "red", "red 2")
    assert cli.json("restore", "red")["examples"] == 3
    assert sorted(c["name"] for c in cli.json("classes")) == ["red", "red 2"]


def _on_a_terminal(library: Path, *args: str, answer: bytes | None) -> tuple[str, int]:
    """``python -m finder ARGS`` with a terminal for stdin and stdout; ``answer`` is typed
    once the question ``[y/N]`` shows (None: no question expected). (output, exit code)"""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "finder", *args, "--library", str(library)])
    out = b""
    try:
        while True:
            if answer is not None and b"[y/N]" in out:
                os.write(fd, answer + b"\n")
                answer = None
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            out += chunk
    except OSError:  # the child closed the terminal
        pass
    _, status = os.waitpid(pid, 0)
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_forget_on_a_terminal_asks_first(taught: CLI) -> None:
    cli = taught
    out, code = _on_a_terminal(cli.library, "forget", "red", answer=b"n")
    assert "forget class 'red' (3 examples, 1 counter-example)? It is kept 30 days" in out
    assert code == 1 and "kept as it was" in out
    assert [c["name"] for c in cli.json("classes")] == ["red"]
    out, code = _on_a_terminal(cli.library, "forget", "red", answer=b"y")
    assert code == 0 and "forgot 'red'" in out and cli.json("classes") == []
    cli("restore", "red")
    out, code = _on_a_terminal(cli.library, "forget", "red", "--yes", answer=None)
    assert code == 0 and "[y/N]" not in out and cli.json("classes") == []


def test_export_and_import_from_the_terminal(
    taught: CLI, tmp_path: Path, photo_tree: Path, model_args: list[str]
) -> None:
    cli = taught
    outside = make_photo(tmp_path / "elsewhere" / "red-outside.jpg", "red", seed=71)
    cli("learn", "red", "--add", str(outside))
    cli("learn", "blue", str(photo_tree / "blue" / "1.jpg"))
    file = tmp_path / "classes.json"
    done = cli("classes", "--export", str(file))
    assert done.stdout == f"exported 2 classes (5 examples, 1 counter-example) to {file}\n"
    piped = cli("classes", "--export", "-")
    assert json.loads(piped.stdout)["classes"] == json.loads(file.read_text())["classes"]
    assert piped.stderr.startswith("finder: exported 2 classes")

    # another library holds half of the photos, elsewhere, and not the outside one; one mark
    # of the file has neither a photo nor a vector: it cannot be found
    data = json.loads(file.read_text())
    gone = "/nonexistent/red-2.jpg"
    for e in data["classes"][1]["examples"]:
        if e["path"].endswith("red/2.jpg"):
            e["path"] = gone
            e.pop("vector", None)
    file.write_text(json.dumps(data))
    other = tmp_path / "other-photos"
    for name in ("red/0.jpg", "red/1.jpg", "blue/1.jpg", "green/0.jpg"):
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_bytes((photo_tree / name).read_bytes())
    outside.unlink()
    fresh = CLI(tmp_path / "lib2")
    fresh("index", str(other), *model_args, "--quiet")
    done = fresh("learn", "red", "--import", str(file))  # only red
    assert re.fullmatch(
        r"imported 'red': 3 examples and 1 counter-example \(cut-off [01]\.\d\d\)\n", done.stdout
    )
    assert (
        "'red': 2 found by content elsewhere, 2 not indexed here, kept by their vectors"
        in done.stderr
    )
    assert f"'red': 1 not found in this library:\n  {gone}\n" in done.stderr
    assert [c["name"] for c in fresh.json("classes")] == ["red"]
    rows = fresh.json("learn", "--import", str(file))
    assert [(r["name"], r["imported"], r["by_fingerprint"], r["missing"]) for r in rows] == [
        ("blue", True, 1, []),
        ("red", True, 2, [gone]),
    ]

    # a file none of whose marks this library can find: nothing learned, said, exit 1
    for c in data["classes"]:
        for e in c["examples"]:
            e["path"] = "/nonexistent/" + e["path"].rsplit("/", 1)[-1]
            e["fingerprint"] = "0" * 16
            e.pop("vector", None)
    file.write_text(json.dumps(data))
    third = CLI(tmp_path / "lib3")
    third("index", str(other / "green"), *model_args, "--quiet")
    none = third("learn", "--import", str(file), ok=False)
    assert none.exit_code == 1 and none.stdout == ""
    assert "finder: 'red' not imported: none of its examples is in this library" in none.stderr
    assert third.json("classes") == []

    _one_line_error(fresh("learn", "red", "--import", str(tmp_path), ok=False), "is a folder")
    _one_line_error(fresh("learn", "green", "--import", str(file), ok=False), "no class named")
    _one_line_error(
        fresh("learn", "red", "x.jpg", "--import", str(file), ok=False), "--import takes no"
    )
    _one_line_error(fresh("learn", ok=False), "needs a class NAME")
    _one_line_error(fresh("classes", "--export", "", ok=False), "empty path")
    _one_line_error(fresh("classes", "--export", str(file), "--forgotten", ok=False), "give one of")


def test_examples_say_where_each_mark_comes_from(taught: CLI, photo_tree: Path) -> None:
    """`classes --examples NAME --json` gives each mark's origin: the photos given to `learn
    NAME` are examples; `--add` and `--not` are marks on photos finder showed (`top`)."""
    taught("learn", "red", "--add", str(photo_tree / "red" / "3.jpg"))
    rows = {e["path"]: e for e in taught.json("classes", "--examples", "red")}
    red = [str(photo_tree / "red" / f"{i}.jpg") for i in range(4)]
    assert {p: (rows[p]["label"], rows[p]["origin"]) for p in red} == {
        red[0]: ("positive", "example"),
        red[1]: ("positive", "example"),
        red[2]: ("positive", "example"),
        red[3]: ("positive", "top"),
    }
    blue = rows[str(photo_tree / "blue" / "0.jpg")]
    assert (blue["label"], blue["origin"]) == ("negative", "top")
    assert set(rows) == set(red) | {str(photo_tree / "blue" / "0.jpg")}
