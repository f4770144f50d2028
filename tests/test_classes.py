"""Classes from Python (issue 24 item 15): marks taken back (``drop``), ``rename``, ``forget``
kept 30 days and ``restore``, and classes carried to another library (``export_classes``,
``import_classes``); each a Change through ``Teaching.apply``. Real SQLite, vectors, model."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from finder.errors import ClassExists, UnknownClass, UsageError
from finder.library import Change, Library
from finder.teach import KEEP_FORGOTTEN
from tests.conftest import make_photo
from tests.test_library import _choice


@pytest.fixture
def indexed(tmp_path: Path, photo_tree: Path, model_args) -> Path:
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        assert lib.index([str(photo_tree)]).embedded == 13
    return tmp_path / "lib"


def _reds(photo_tree: Path) -> list[str]:
    return [str(photo_tree / "red" / f"{i}.jpg") for i in range(4)]


def _tables(library: Path) -> dict[str, list]:
    db = sqlite3.connect(library / "catalog.db")
    try:
        return {
            t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("classes", "examples", "forgotten", "forgotten_examples")
        }
    finally:
        db.close()


def test_drop_takes_back_examples_and_marks_in_one_retraining(
    indexed: Path, photo_tree: Path
) -> None:
    reds, blue = _reds(photo_tree), str(photo_tree / "blue" / "0.jpg")
    with Library(indexed) as lib:
        first = lib.learn("red", reds[:3], negatives=[blue])
        record = lib.learn("red", drop=[reds[2], blue])
        assert (record["n_pos"], record["n_neg"]) == (2, 0)
        assert record["head"] != first["head"]  # retrained
        assert lib.examples("red") == [(reds[0], 1), (reds[1], 1)]
        # marks given and taken back in one change
        lib.learn("red", [reds[3]], negatives=[blue], drop=[reds[1]])
        assert set(lib.examples("red")) == {(reds[0], 1), (reds[3], 1), (blue, 0)}

        # a photo deleted since it was marked can still be dropped, by its path
        gone = photo_tree / "red" / "3.jpg"
        gone.unlink()
        assert lib.learn("red", drop=[str(gone)])["n_pos"] == 1

        before = _tables(indexed)
        with pytest.raises(UsageError, match="not an example or counter-example of 'red'"):
            lib.learn("red", drop=[str(photo_tree / "green" / "0.jpg")])
        with pytest.raises(UsageError, match="takes back every example"):
            lib.learn("red", drop=[str(photo_tree / "red")])  # the folder: every red mark
        with pytest.raises(UsageError, match="both to mark and with"):
            lib.learn("red", [reds[0]], drop=[reds[0]])
        with pytest.raises(UnknownClass):
            lib.learn("green", drop=[reds[0]])
        assert _tables(indexed) == before  # refused: nothing changed


def test_a_folder_drops_every_mark_under_it(indexed: Path, photo_tree: Path) -> None:
    reds, blues = _reds(photo_tree), [str(photo_tree / "blue" / f"{i}.jpg") for i in range(3)]
    with Library(indexed) as lib:
        lib.learn("red", reds, negatives=blues)
        record = lib.learn("red", drop=[str(photo_tree / "blue") + "/"])
        assert (record["n_pos"], record["n_neg"]) == (4, 0)
        record = lib.learn("red", negatives=blues[:1])
        assert record["n_neg"] == 1


def test_rename_keeps_marks_and_head(indexed: Path, photo_tree: Path) -> None:
    reds = _reds(photo_tree)
    with Library(indexed) as lib:
        learned = lib.learn("red", reds[:2])
        lib.learn("blue", [str(photo_tree / "blue" / "0.jpg")])
        found = [m.path for m in lib.find("red")]
        renamed = lib.rename(" red ", "  crimson  red ")  # names normalised as everywhere
        assert renamed["name"] == "crimson red" and renamed["head"] == learned["head"]
        assert lib.examples("crimson red") == [(p, 1) for p in reds[:2]]
        assert [m.path for m in lib.find("crimson red")] == found
        assert sorted(c["name"] for c in lib.classes()) == ["blue", "crimson red"]
        with pytest.raises(UnknownClass):
            lib.find("red")
        before = _tables(indexed)
        with pytest.raises(ClassExists, match="'blue' exists already"):
            lib.rename("crimson red", "blue")
        with pytest.raises(UsageError, match="control characters"):
            lib.rename("crimson red", "a\tb")
        with pytest.raises(UnknownClass):
            lib.rename("red", "scarlet")
        assert _tables(indexed) == before
        assert lib.rename("crimson red", "crimson red")["name"] == "crimson red"  # no change


def test_forget_keeps_the_class_30_days_and_restore_brings_it_back(
    indexed: Path, photo_tree: Path
) -> None:
    reds = _reds(photo_tree)
    with Library(indexed) as lib:
        learned = lib.learn("red", reds[:2], negatives=[str(photo_tree / "blue" / "0.jpg")])
        marks = lib.examples("red")
        assert lib.forget("red") == "red"
        assert lib.classes() == [] and lib.forgotten()[0]["name"] == "red"
        kept = lib.forgotten()[0]
        assert (kept["n_pos"], kept["n_neg"]) == (2, 1)
        assert kept["kept_until"] == pytest.approx(time.time() + KEEP_FORGOTTEN, abs=60)
        with pytest.raises(UnknownClass):
            lib.find("red")
        photo = next(m.id for m in lib.browse(0, 100)[1] if m.path == reds[0])
        assert lib.class_scores(photo) == []  # the page does not see it either

        restored = lib.restore("red")
        assert restored["head"] == learned["head"] and lib.examples("red") == marks
        assert lib.forgotten() == []
        with pytest.raises(ClassExists, match="not forgotten"):
            lib.restore("red")

        # learning a forgotten name anew starts a new class; restore says to rename it first
        lib.forget("red")
        fresh = lib.learn("red", [reds[3]])
        assert fresh["n_pos"] == 1 and fresh["n_neg"] == 0
        with pytest.raises(ClassExists, match="learned anew since it was forgotten: rename"):
            lib.restore("red")
        lib.rename("red", "red, second")
        assert lib.restore("red")["head"] == learned["head"]
        assert sorted(c["name"] for c in lib.classes()) == ["red", "red, second"]
        with pytest.raises(UnknownClass, match="no forgotten class named 'green'"):
            lib.restore("green")


def test_a_class_forgotten_31_days_ago_is_gone_for_good(indexed: Path, photo_tree: Path) -> None:
    reds = _reds(photo_tree)
    with Library(indexed) as lib:
        lib.learn("red", reds[:2])
        lib.learn("blue", [str(photo_tree / "blue" / "0.jpg")])
        lib.forget("red")
    db = sqlite3.connect(indexed / "catalog.db")  # 31 days pass
    db.execute("UPDATE forgotten SET forgotten_at = forgotten_at - ?", [31 * 24 * 3600])
    db.commit()
    db.close()
    with Library(indexed) as lib:
        assert lib.forgotten() == []
        with pytest.raises(UnknownClass, match="no forgotten class"):
            lib.restore("red")
        lib.forget("blue")  # the next write purges it
        assert [r["name"] for r in lib.forgotten()] == ["blue"]
    tables = _tables(indexed)
    assert len(tables["forgotten"]) == 1 and len(tables["forgotten_examples"]) == 1


def test_one_change_is_one_kind(indexed: Path, photo_tree: Path) -> None:
    with Library(indexed) as lib:
        lib.learn("red", _reds(photo_tree)[:1])
        with pytest.raises(UsageError, match="either teaches, forgets, restores or renames"):
            lib.apply(Change("red", forget=True, rename_to="x"))
        assert [c["name"] for c in lib.classes()] == ["red"]


# -- carrying classes to another library ------------------------------------------------------
def test_export_then_import_matches_by_path_then_by_fingerprint(
    tmp_path: Path, indexed: Path, photo_tree: Path, model_args
) -> None:
    reds, blue = _reds(photo_tree), str(photo_tree / "blue" / "0.jpg")
    outside = make_photo(tmp_path / "outside.jpg", "red", seed=55)  # not in the library
    with Library(indexed) as lib:
        learned = lib.learn("red", [*reds[:3], str(outside)], negatives=[blue])
        lib.learn("blue", [blue])
        document = lib.export_classes(tmp_path / "classes.json")
    data = json.loads((tmp_path / "classes.json").read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(document))
    assert [c["name"] for c in data["classes"]] == ["blue", "red"]
    red = data["classes"][1]
    assert red["settings"]["threshold"] == learned["threshold"]
    assert sorted((e["path"], e["label"]) for e in red["examples"]) == sorted(
        [(p, 1) for p in [*reds[:3], str(outside)]] + [(blue, 0)]
    )
    assert all(len(e["fingerprint"]) == 32 for e in red["examples"])

    # the same photos elsewhere (moved, and one renamed): found by their content
    moved = tmp_path / "moved"
    shutil.copytree(photo_tree, moved)
    (moved / "red" / "0.jpg").rename(moved / "red" / "first.jpg")
    outside.unlink()  # gone: kept by its vector (the same backbone)
    other = tmp_path / "other"
    with Library(other, backbone=_choice(model_args)) as lib2:
        lib2.index([str(moved)])
        report = lib2.import_classes(tmp_path / "classes.json", names=["red"])
        (one,) = report.classes
        assert (one.by_path, one.by_fingerprint, one.by_vector, one.missing) == (0, 4, 1, [])
        assert (one.record["n_pos"], one.record["n_neg"]) == (4, 1)
        assert [c["name"] for c in lib2.classes()] == ["red"]
        paths = {p for p, _ in lib2.examples("red")}
        assert str(moved / "red" / "first.jpg") in paths and str(outside) in paths
        marks = {m.path: m.id for m in lib2.marks("red")}
        assert marks[str(outside)] is None and all(
            i is not None for p, i in marks.items() if p != str(outside)
        )
        # the class finds the same photos as it does where it was learned
        with Library(indexed) as lib:
            there = {Path(m.path).relative_to(photo_tree).parts[0] for m in lib.find("red")}
        here = {Path(m.path).relative_to(moved).parts[0] for m in lib2.find("red")}
        assert here == there
        with pytest.raises(UnknownClass, match="no class named 'green' in the file"):
            lib2.import_classes(tmp_path / "classes.json", names=["green"])

    # the same library: every mark found at its path (the deleted one by its vector)
    with Library(indexed) as lib:
        lib.forget("red")
        (one,) = lib.import_classes(document, names=["red"]).classes
        assert (one.by_path, one.by_fingerprint, one.by_vector, one.missing) == (4, 0, 1, [])
        marks = lib.examples("red")
        assert sorted(marks) == sorted([(p, 1) for p in [*reds[:3], str(outside)]] + [(blue, 0)])
        again = lib.import_classes(document, names=["red"]).classes[0].record  # adds nothing
        assert lib.examples("red") == marks and (again["n_pos"], again["n_neg"]) == (4, 1)


def test_import_into_another_backbone_embeds_or_names_what_it_cannot_find(
    tmp_path: Path, indexed: Path, photo_tree: Path, tiny_keras_model: Path
) -> None:
    from finder.library import BackboneChoice

    reds = _reds(photo_tree)
    with Library(indexed) as lib:
        lib.learn("red", reds[:2])
        document = lib.export_classes()
    sub = tmp_path / "half"
    shutil.copytree(photo_tree / "red", sub / "red")
    (sub / "red" / "1.jpg").unlink()
    # another backbone than ``indexed``'s in both suites: without ../shared that one is the tiny
    # model at its "pool" layer, whose vectors an import would rightly reuse (same backbone)
    choice = BackboneChoice(model=str(tiny_keras_model), layer="logits")
    with Library(tmp_path / "keras", backbone=choice) as lib3:
        lib3.index([str(sub)])
        (one,) = lib3.import_classes(document).classes
        # 0.jpg by content; 1.jpg is not indexed here but its file is where it was: embedded
        assert (one.by_fingerprint, one.by_vector, one.embedded, one.missing) == (1, 0, 1, [])
        lib3.forget("red")
        (photo_tree / "red" / "1.jpg").unlink()
        (one,) = lib3.import_classes(document).classes
        assert one.missing == [reds[1]] and one.record["n_pos"] == 1


def test_a_file_that_is_not_an_export_is_one_line(tmp_path: Path, indexed: Path) -> None:
    bad = tmp_path / "bad.json"
    with Library(indexed) as lib:
        for content, words in [
            (b"not json", "not JSON"),
            (b"[]", "finder-classes"),
            (b'{"format": "finder-classes", "version": 9, "classes": []}', "upgrade finder"),
            (
                b'{"format": "finder-classes", "version": 1, "classes": [{"name": "x"}]}',
                "lacks its examples",
            ),
        ]:
            bad.write_bytes(content)
            with pytest.raises(UsageError, match=words):
                lib.import_classes(bad)
        with pytest.raises(UsageError, match="no such file"):
            lib.import_classes(tmp_path / "absent.json")
        assert lib.classes() == []


def test_an_undecodable_path_is_exported_as_strict_json(tmp_path: Path, model_args) -> None:
    import os

    root = tmp_path / "photos"
    for i in range(3):
        make_photo(root / f"{i}.jpg", "red", seed=i)
    odd = os.fsencode(str(root)) + b"/odd\xff.jpg"
    with open(odd, "wb") as f:
        f.write((root / "0.jpg").read_bytes()[:-1] + b"\xd9")
    odd_path = os.fsdecode(odd)
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(root)])
        lib.learn("odd", [odd_path])
        text = json.dumps(lib.export_classes(), ensure_ascii=False)
        text.encode("utf-8")  # no lone surrogates: strict JSON
        (e,) = json.loads(text)["classes"][0]["examples"]
        assert e["path"].endswith("odd\\xff.jpg") and "path_bytes" in e
        lib.forget("odd")
        (one,) = lib.import_classes(json.loads(text)).classes
        assert one.by_path == 1 and lib.examples("odd") == [(odd_path, 1)]
        vector = np.frombuffer(__import__("base64").b64decode(e["vector"]), "<f4")
        assert vector.shape == (lib.status()["backbone_info"]["dim"],)
