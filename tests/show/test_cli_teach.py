"""Teaching from the terminal: `find NAME --review N`, and `eval --feedback` through `learn`."""

from __future__ import annotations

from pathlib import Path

from finder.library import Library
from tests.conftest import CLI


def test_find_review_shows_unmarked_photos_and_marking_them_moves_on(
    cli, photo_tree: Path, model_args: list[str]
) -> None:
    cli.json("index", str(photo_tree), *model_args)
    first = str(sorted((photo_tree / "red").glob("*.jpg"))[0])
    cli("learn", "red", first)
    shown = cli.json("find", "red", "--review", "3")
    paths = [m["path"] for m in shown]
    assert len(paths) == 3 == len(set(paths)) and first not in paths
    assert all(
        Path(p).is_file() and 0.0 <= m["probability"] <= 1.0
        for p, m in zip(paths, shown, strict=True)
    )
    cli("learn", "red", "--add", paths[0], "--not", paths[1])
    again = [m["path"] for m in cli.json("find", "red", "--review", "3")]
    assert not {first, paths[0], paths[1]} & set(again)
    assert cli("find", "red", "--review", "0", ok=False).exit_code != 0


def test_library_review_returns_matches(tmp_path: Path, photo_tree: Path, model_args) -> None:
    from tests.test_library import _choice

    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(photo_tree)])
        lib.learn("blue", [str(photo_tree / "blue" / "0.jpg")])
        picks = lib.review("blue", 4)
        assert len(picks) == 4 and all(m.path != str(photo_tree / "blue" / "0.jpg") for m in picks)
        assert all(0.0 <= m.score <= 1.0 and m.id > 0 for m in picks)


def test_eval_feedback_teaches_through_learn_and_forgets(
    cli, photo_tree: Path, model_args: list[str]
) -> None:
    out = cli.json(
        "eval",
        str(photo_tree),
        *model_args,
        "--feedback",
        "1",
        "--clicks",
        "2",
        "--k",
        "1",
        "--trials",
        "1",
        "--shown",
        "review",
        "-q",
    )
    result = out["feedback"]
    assert result["protocol"] == "feedback" and result["shown"] == "review"
    rows = result["rows"]
    assert {r["class"] for r in rows} == {"red", "blue", "green"}
    assert {r["round"] for r in rows} == {0, 1}
    for r in rows:
        assert 0.0 <= r["precision"] <= 1.0 and 0.0 <= r["ece"] <= 1.0
        assert r["f1"] <= r["best_f1"] <= 1.0  # no answer beats the ranking's best cut
    assert cli.json("classes") == []  # the classes the simulated person taught are gone
    assert result["smooth"]["k"] == 10  # the answer re-ranked by its neighbours, by default
    flags = ["--feedback", "1", "--clicks", "2", "--k", "1", "--trials", "1", "-q"]
    args = ["eval", str(photo_tree), *model_args, *flags, "--shown", "review"]
    plain = cli.json(*args, "--no-smooth")["feedback"]
    assert plain["smooth"] is None  # the head's own answer: the figures of before
    for a, b in zip(plain["rows"], rows, strict=True):
        assert a["f1"] == a["f1_head"] == b["f1_head"] and a["ece"] == b["ece_head"]
    bad = cli("eval", str(photo_tree), "--feedback", "1", "--shown", "random", ok=False)
    assert bad.exit_code != 0 and "shown" in bad.stderr


def test_eval_takes_a_keras_model_file_and_its_layer(
    cli, tmp_path: Path, photo_tree: Path, tiny_keras_model: Path
) -> None:
    """The backbone a newcomer without ../shared uses: a .keras file and one of its layers."""
    model = ["--model", str(tiny_keras_model), "--layer", "pool"]
    out = cli.json("eval", str(photo_tree), *model, "--k", "1", "--trials", "2", "-q")
    assert {r["class"] for r in out["few_shot"]["rows"]} >= {"red", "blue", "green"}
    info = cli.json("status")["backbone_info"]
    assert info["layer"] == "pool" and info["dim"] == 16  # the layer asked for, not the logits
    fresh = CLI(tmp_path / "another")
    wrong = fresh(
        "eval", str(photo_tree), "--model", str(tiny_keras_model), "--layer", "nope", ok=False
    )
    assert wrong.exit_code != 0 and "nope" in wrong.stderr
