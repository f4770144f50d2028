"""End to end through the CLI, on a temporary library: real SQLite, FAISS and TensorFlow."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import make_photo, run_finder


def _paths(rows: list[dict]) -> list[str]:
    return [r["path"] for r in rows]


def test_index_learn_find_similar_forget(cli, photo_tree: Path, model_args: list[str]) -> None:
    first = cli.json("index", str(photo_tree), *model_args)
    assert first["new"] == 13 and first["embedded"] == 13 and first["failed"] == 0

    status = cli.json("status")
    assert status["images"] == 13
    assert status["failed"] == 0
    assert status["classes"] == 0
    assert status["backbone"].startswith(("tflite", "keras-file"))
    assert status["index"]

    # Running again over the unchanged tree embeds nothing.
    again = cli.json("index", str(photo_tree))
    assert again["embedded"] == 0 and again["unchanged"] == 13 and again["new"] == 0

    reds = sorted((photo_tree / "red").glob("*.jpg"))
    learned = cli.json("learn", "red", str(reds[0]), str(reds[1]))
    assert learned["name"] == "red" and learned["examples"] == 2
    assert 0.0 < learned["threshold"] < 1.0

    classes = cli.json("classes")
    assert [c["name"] for c in classes] == ["red"]
    assert cli.json("status")["classes"] == 1

    ranked = cli.json("find", "red", "--top", "13")
    assert len(ranked) == 13
    probs = [r["probability"] for r in ranked]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert set(_paths(ranked)) == {str(p) for p in photo_tree.rglob("*.*")}
    top3 = cli.json("find", "red", "--top", "3")
    assert [r["probability"] for r in top3] == probs[:3]
    # a cut between two clearly different probabilities, so float rounding cannot matter
    gap = max(range(12), key=lambda i: probs[i] - probs[i + 1])
    floor = (probs[gap] + probs[gap + 1]) / 2
    above = cli.json("find", "red", "--min-prob", repr(floor))
    assert len(above) == gap + 1
    assert set(_paths(above)) == {r["path"] for r in ranked if r["probability"] >= floor}
    assert [r["probability"] for r in above] == sorted(
        (r["probability"] for r in above), reverse=True
    )
    default = cli.json("find", "red")
    assert all(r["probability"] >= learned["threshold"] - 1e-6 for r in default)

    text = cli("find", "red", "--top", "2").stdout.splitlines()
    assert len(text) == 2 and text[0].split("  ", 1)[1] in {
        r["path"] for r in ranked if r["probability"] == probs[0]
    }

    near = cli.json("similar", str(reds[2]), "--top", "4")
    assert len(near) == 4
    assert str(reds[2]) not in _paths(near)  # an indexed query is not its own neighbour
    sims = [r["similarity"] for r in near]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= s <= 1.0001 for s in sims)

    # A photo outside the library is embedded on the fly.
    outside = make_photo(photo_tree.parent / "elsewhere" / "q.jpg", "red", seed=77)
    assert len(cli.json("similar", str(outside), "--top", "2")) == 2

    cli("forget", "red")
    assert cli.json("classes") == []
    gone = cli("find", "red", ok=False)
    assert gone.exit_code != 0 and "no class named 'red'" in gone.stderr


def test_incremental_new_changed_moved_deleted(cli, photo_tree: Path, model_args) -> None:
    cli.json("index", str(photo_tree), *model_args)
    blue = sorted((photo_tree / "blue").glob("*.jpg"))
    os.remove(blue[0])  # deleted
    shutil.move(blue[1], photo_tree / "moved.jpg")  # moved: same content, new path
    make_photo(photo_tree / "red" / "new.jpg", "red", seed=500)  # new
    make_photo(blue[2], "red", seed=501)  # changed: new content, same path
    st = os.stat(blue[2])
    os.utime(blue[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    summary = cli.json("index", str(photo_tree))
    assert summary["new"] == 1
    assert summary["moved"] == 1
    assert summary["deleted"] == 1
    assert summary["changed"] == 1
    assert summary["embedded"] == 2  # the new file and the changed one, not the moved one
    assert summary["unchanged"] == 13 - 3
    assert cli.json("status")["images"] == 13
    near = cli.json("similar", str(photo_tree / "moved.jpg"), "--top", "12")
    assert str(blue[0]) not in _paths(near)


def test_index_one_root_leaves_other_roots_alone(cli, tmp_path: Path, model_args) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    for i in range(2):
        make_photo(a / f"{i}.jpg", "red", seed=i)
        make_photo(b / f"{i}.jpg", "blue", seed=i)
    # a sibling whose name starts like the other root must not count as under it
    make_photo(tmp_path / "ab" / "x.jpg", "green", seed=3)
    cli.json("index", str(a), str(b), str(tmp_path / "ab"), *model_args)
    assert cli.json("status")["images"] == 5
    shutil.rmtree(b)
    os.makedirs(b)
    summary = cli.json("index", str(a))
    assert summary["deleted"] == 0 and summary["unchanged"] == 2
    assert cli.json("status")["images"] == 5
    assert cli.json("index", str(b))["deleted"] == 2
    assert cli.json("status")["images"] == 3


def test_bad_files_are_recorded_not_fatal(cli, photo_tree: Path, model_args) -> None:
    (photo_tree / "empty.jpg").write_bytes(b"")
    (photo_tree / "notes.jpg").write_text("not a photo at all")
    good = (photo_tree / "red" / "0.jpg").read_bytes()
    (photo_tree / "cut.jpg").write_bytes(good[: len(good) // 2])
    (photo_tree / "folder.jpg").mkdir()
    summary = cli.json("index", str(photo_tree), *model_args)
    assert summary["failed"] == 4 and summary["embedded"] == 13
    status = cli.json("status", "--failed")
    assert status["failed"] == 4
    reasons = {Path(f["path"]).name: f["reason"] for f in status["failures"]}
    assert set(reasons) == {"empty.jpg", "notes.jpg", "cut.jpg", "folder.jpg"}
    assert all(reasons.values())
    assert "directory" in reasons["folder.jpg"]
    text = cli("status", "--failed").stdout
    assert "empty.jpg" in text
    # failed files are not retried while unchanged ...
    assert cli.json("index", str(photo_tree))["failed"] == 0
    # ... and are tried again once they change
    (photo_tree / "notes.jpg").unlink()
    make_photo(photo_tree / "notes.jpg", "blue", seed=1234)
    again = cli.json("index", str(photo_tree))
    assert again["changed"] == 1 and again["embedded"] == 1
    assert cli.json("status")["failed"] == 3


def test_non_utf8_paths_round_trip(cli, tmp_path: Path, model_args) -> None:
    root = tmp_path / "photos"
    make_photo(root / "a.jpg", "red", seed=1)
    raw = os.fsencode(root) + b"/caf\xe9-\xff.jpg"
    make_photo(Path(os.fsdecode(raw)), "red", seed=2)
    make_photo(root / "日本語 ünïcode.jpg", "red", seed=3)
    cli.json("index", str(root), *model_args)
    cli("learn", "r", str(root / "a.jpg"))
    rows = cli.json("find", "r", "--top", "3")
    encoded = {
        base64.b64decode(r["path_bytes"]) if "path_bytes" in r else r["path"].encode() for r in rows
    }
    assert raw in encoded
    assert os.fsencode(str(root / "日本語 ünïcode.jpg")) in encoded
    out = cli("find", "r", "--top", "3").stdout_bytes
    assert b"caf\xe9-\xff.jpg" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/no/such/folder"], "no such folder"),
        (["find", "nothing"], "no class named 'nothing'"),
        (["similar", "/no/such.jpg"], "no such file"),
        (["find", "cat", "--min-prob", "2"], "--min-prob"),
        (["find", "cat", "--top", "zero"], "--top"),
        (["bogus-command"], "No such command"),
        (["find"], "Missing argument"),
    ],
)
def test_bad_input_one_line_no_traceback(tmp_path, args, message) -> None:
    result = run_finder(*args, "--library", str(tmp_path / "lib"))
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("finder: error:")
    assert result.stdout == b""


def test_bad_input_leaves_library_unchanged(cli, photo_tree: Path, model_args, tmp_path) -> None:
    cli.json("index", str(photo_tree), *model_args)
    catalog = cli.library / "catalog.db"
    before = catalog.read_bytes()
    text = tmp_path / "readme.jpg"
    text.write_text("hello")
    result = cli("learn", "x", str(text), ok=False)
    assert result.exit_code != 0
    assert "not an image" in result.stderr and "Traceback" not in result.output
    assert cli.json("classes") == []
    missing = cli("learn", "x", str(tmp_path / "nope.jpg"), ok=False)
    assert missing.exit_code != 0 and "no such file" in missing.stderr
    # another backbone for this library is refused before anything changes
    other = cli("index", str(photo_tree), "--backbone", "vgg16", "--weights", "none", ok=False)
    assert other.exit_code != 0
    assert "cannot mix" in other.stderr and "Traceback" not in other.output
    assert cli.json("status")["images"] == 13
    del before


def test_empty_library_is_a_clear_error(cli, photo_tree: Path) -> None:
    for args in (["find", "cat"], ["learn", "cat", str(photo_tree / "red" / "0.jpg")]):
        result = cli(*args, ok=False)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
    assert "finder index" in cli("learn", "cat", str(photo_tree / "red"), ok=False).stderr
    assert cli.json("status")["images"] == 0


def test_subprocess_exit_code_and_stderr(tmp_path: Path) -> None:
    result = run_finder("index", str(tmp_path / "missing"), "--library", str(tmp_path / "lib"))
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [
        f"finder: error: no such folder: {tmp_path / 'missing'}"
    ]
    assert result.stdout == b""


def test_learn_refines_and_lists_examples(cli, photo_tree: Path, model_args) -> None:
    cli.json("index", str(photo_tree), *model_args)
    reds = sorted((photo_tree / "red").glob("*.jpg"))
    blues = sorted((photo_tree / "blue").glob("*.jpg"))
    first = cli("learn", "red", str(reds[0]))
    assert first.stdout.startswith("learned 'red' from 1 examples")
    assert "finder find red --review 10" in first.stderr  # what teaches it most, on stderr
    refined = cli.json("learn", "red", "--add", str(reds[1]), "--not", str(blues[0]))
    again = cli("learn", "red", "--add", str(reds[2]))
    assert "--review" not in again.stderr  # a class with a counter-example: no hint
    assert refined["examples"] == 2 and refined["negatives"] == 1
    listed = cli.json("classes", "--examples", "red")
    assert {(r["path"], r["label"]) for r in listed} == {
        (str(reds[0]), "positive"),
        (str(reds[1]), "positive"),
        (str(reds[2]), "positive"),
        (str(blues[0]), "negative"),
    }
    # a folder of examples
    folder = cli.json("learn", "reds", str(photo_tree / "red"))
    assert folder["examples"] == 4


NO_TF = textwrap.dedent(
    """
    import sys
    from finder.show.cli import app
    try:
        app(sys.argv[1:], standalone_mode=False)
    finally:
        loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("keras"))
        print("LOADED:" + ",".join(loaded), file=sys.stderr)
    """
)


def test_commands_that_embed_nothing_never_import_tensorflow(
    cli, photo_tree: Path, model_args
) -> None:
    cli.json("index", str(photo_tree), *model_args)
    lib = str(cli.library)
    red = str(photo_tree / "red" / "0.jpg")
    for args in (
        ["--help"],
        ["status", "--library", lib],
        ["classes", "--library", lib],
        ["learn", "red", red, "--library", lib],
        ["find", "red", "--library", lib],
        ["find", "red", "--top", "3", "--library", lib],
        ["similar", red, "--library", lib],
        ["dupes", "--library", lib],
        ["backbones"],
    ):
        result = run_code(NO_TF, *args)
        assert "LOADED:\n" in result.stderr.decode() or result.stderr.decode().endswith(
            "LOADED:\n"
        ), (args, result.stderr.decode()[-2000:])


def run_code(code: str, *args: str):
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, timeout=300, check=False
    )


def test_vgg16_default_backbone_end_to_end(cli, tmp_path: Path) -> None:
    root = tmp_path / "few"
    for i in range(3):
        make_photo(root / f"{i}.jpg", "red", seed=i)
    summary = cli.json("index", str(root), "--weights", "none")
    assert summary["embedded"] == 3
    status = cli.json("status")
    assert status["backbone_info"]["name"] == "vgg16"
    assert status["backbone_info"]["layer"] == "fc1"
    assert status["backbone_info"]["dim"] == 4096
    # the recorded backbone is reused without flags
    make_photo(root / "3.jpg", "blue", seed=3)
    assert cli.json("index", str(root))["embedded"] == 1


def test_missing_imagenet_weights_name_the_way_out(cli, tmp_path, monkeypatch) -> None:
    """No network: one line naming --weights, no traceback, library untouched."""
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    root = tmp_path / "few"
    make_photo(root / "0.jpg", "red", seed=0)
    result = cli("index", str(root), ok=False)
    assert result.exit_code != 0
    assert "--weights" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli.json("status")["images"] == 0


def test_backbones_lists_registry() -> None:
    result = run_finder("backbones", "--json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)
    names = [r["name"] for r in rows]
    assert names[0] == "vgg16" and rows[0]["default"] and rows[0]["dim"] == 4096
    assert {"resnet50", "efficientnetv2-b0", "mobilenetv3-large", "tflite"} <= set(names)


def test_python_dash_m_runs(tmp_path: Path) -> None:
    result = run_finder("--help")
    assert result.returncode == 0 and b"index" in result.stdout
    status = run_finder("status", "--json", "--library", str(tmp_path / "lib"))
    assert json.loads(status.stdout)["images"] == 0


def test_views_are_recorded_and_kept(cli, photo_tree: Path, model_args) -> None:
    bad = cli("index", str(photo_tree), *model_args, "--views", "3", ok=False)
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "--views must be one of 1, 2, 4" in bad.stderr
    cli("index", str(photo_tree), *model_args, "--views", "2", "--quiet")
    status = cli.json("status")
    assert status["images"] == 13 and status["backbone_info"]["views"] == 2
    assert "2 views" in status["backbone"]
    other = cli("index", str(photo_tree), "--views", "1", ok=False)
    assert other.exit_code != 0 and "cannot mix" in other.stderr
    cli("learn", "red", str(photo_tree / "red" / "0.jpg"), str(photo_tree / "red" / "1.jpg"))
    found = [m["path"] for m in cli.json("find", "red", "--top", "3")]
    assert len(found) == 3 and all(os.path.isfile(p) for p in found)


@pytest.mark.parametrize("budget", ["-5GB", "0", "0KB", "inf"])
def test_memory_budget_must_be_positive(cli, photo_tree: Path, model_args, budget: str) -> None:
    result = cli("index", str(photo_tree), *model_args, "--memory-budget", budget, ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--memory-budget" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert cli.json("status")["images"] == 0


def test_precision_is_recorded_and_kept(cli, photo_tree: Path) -> None:
    light = ["--backbone", "mobilenetv3-large", "--weights", "none"]
    bad = cli("index", str(photo_tree), *light, "--precision", "half", ok=False)
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "--precision must be one of auto, float32, bfloat16" in bad.stderr
    first = cli("index", str(photo_tree), *light, "--precision", "bfloat16", "--quiet")
    assert "computing in bfloat16" in first.stderr
    status = cli.json("status")
    assert status["images"] == 13 and status["backbone_info"]["precision"] == "bfloat16"
    assert "precision bfloat16" in cli("status").stdout
    other = cli("index", str(photo_tree), "--precision", "float32", ok=False)
    assert other.exit_code != 0 and "cannot mix" in other.stderr and "float32" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and "Traceback" not in other.output
    same = cli.json("index", str(photo_tree), "--precision", "bfloat16")
    assert same["unchanged"] == 13 and same["embedded"] == 0
    assert cli.json("status")["images"] == 13  # nothing indexed was lost
