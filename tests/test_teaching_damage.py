"""Issue 24, data loss: nothing a person taught is lost when the catalog, its backups, the
vectors or the teaching journal are damaged or lost; `finder check` exits 3 before and 0 after
`finder repair` + `finder index`. Real SQLite, real vectors (the tiny Keras model of conftest),
the CLI in-process; each test works on its own copy of one indexed and taught library."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from finder.library import Library
from finder.store import journal as jr
from tests.conftest import CLI
from tests.test_damage import index_red


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory, tiny_keras_model: Path) -> Path:
    """12 photos indexed, class ``red`` learned from two of them: the last index run's backup
    holds it; what each test teaches next is newer than any backup."""
    base = tmp_path_factory.mktemp("taught")
    cli = index_red(base, tiny_keras_model)
    cli("index", str(base / "photos"), "-q")  # a backup holding red
    return base


@pytest.fixture
def lib(taught: Path, tmp_path: Path) -> tuple[CLI, Path]:
    shutil.copytree(taught / "library", tmp_path / "library")
    return CLI(tmp_path / "library"), taught / "photos"


def teach_after_backup(cli: CLI, tree: Path) -> dict:
    """A class learned after the last index, a ✗ mark and a ✓ more on red: what the catalog
    holds now (the model the repaired library must equal)."""
    cli("learn", "green", str(tree / "green" / "0.jpg"), str(tree / "green" / "1.jpg"))
    cli("learn", "red", "--not", str(tree / "blue" / "0.jpg"), "--add", str(tree / "red" / "2.jpg"))
    return teaching(cli)


def teaching(cli: CLI) -> dict:
    """Every class with its cut-off and its examples and marks."""
    out = {}
    for c in cli.json("classes"):
        marks = cli.json("classes", "--examples", c["name"])
        out[c["name"]] = (c["threshold"], sorted((m["path"], m["label"]) for m in marks))
    return out


def checkpoint(library: Path) -> None:
    with sqlite3.connect(library / "catalog.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def check_code(cli: CLI) -> int:
    return cli("check", ok=False).exit_code


def repaired_and_indexed(cli: CLI, tree: Path) -> dict:
    """`finder check` exits 3; `repair` then one `index`; `check` then exits 0."""
    assert check_code(cli) == 3
    report = cli.json("repair")
    cli("index", str(tree), "-q")
    result = cli("check", ok=False)
    assert result.exit_code == 0, result.stdout
    return report


def all_indexed(cli: CLI, tree: Path) -> None:
    status = cli.json("status")
    assert status["images"] == 12 and status["pending"] == 0
    found = {r["path"] for r in cli.json("similar", str(tree / "red" / "0.jpg"), "--top", "100")}
    assert len(found) == 11


# ------------------------------------------------------------------------------------ item 1
def test_1_a_class_and_a_mark_after_the_last_index_survive_a_truncated_catalog(lib) -> None:
    cli, tree = lib
    model = teach_after_backup(cli, tree)
    checkpoint(cli.library)
    catalog = cli.library / "catalog.db"
    os.truncate(catalog, catalog.stat().st_size * 7 // 10)
    report = repaired_and_indexed(cli, tree)
    assert report["restored"] and set(report["teaching"]["from_journal"]) == {"red", "green"}
    assert teaching(cli) == model
    all_indexed(cli, tree)


# ------------------------------------------------------------------------------------ item 2
def test_2_no_backups_and_a_damaged_catalog(lib) -> None:
    cli, tree = lib
    model = teach_after_backup(cli, tree)
    checkpoint(cli.library)
    shutil.rmtree(cli.library / "backups")
    catalog = cli.library / "catalog.db"
    os.truncate(catalog, catalog.stat().st_size * 7 // 10)
    err = cli("classes", ok=False).stderr
    assert "run `finder repair`" in err and err.count("damaged") == 1  # not nested
    report = repaired_and_indexed(cli, tree)
    assert report["restored"] is None and report["images_restored"] == 12
    assert teaching(cli) == model
    all_indexed(cli, tree)


@pytest.mark.parametrize("image_map", [True, False])
def test_2_no_catalog_at_all_nor_its_journal_files_nor_backups(lib, image_map: bool) -> None:
    cli, tree = lib
    model = teach_after_backup(cli, tree)
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    shutil.rmtree(cli.library / "backups")
    if not image_map:
        (cli.library / "images.npz").unlink()
    for command in (["status"], ["classes"], ["find", "red"], ["index", str(tree), "-q"]):
        result = cli(*command, ok=False)
        assert result.exit_code == 3 and "run `finder repair`" in result.stderr, command
    report = cli.json("repair")
    assert report["images_restored"] == (12 if image_map else 0)
    assert report["images_found"] == (0 if image_map else 12)
    assert teaching(cli) == model  # before any index: the classes are back
    summary = cli.json("index", str(tree), "-q")
    assert summary["embedded"] == (0 if image_map else 12)  # matched vectors are kept
    assert cli("check").stdout.strip() == "no problems found"
    assert teaching(cli) == model
    all_indexed(cli, tree)


def test_renames_drops_forgets_and_restores_survive_the_loss_of_catalog_and_backups(lib) -> None:
    """Item 15's changes are journalled as learn's are: a class renamed, a mark taken back, a
    class forgotten and one restored come back as they were after the catalog, its -wal/-shm
    files and its backups are all lost."""
    cli, tree = lib
    teach_after_backup(cli, tree)
    cli("learn", "blue", str(tree / "blue" / "0.jpg"), str(tree / "blue" / "1.jpg"))
    cli("rename", "green", "verde")
    cli("learn", "red", "--drop", str(tree / "blue" / "0.jpg"))  # the ✗ taken back
    cli("forget", "blue", "--yes")
    cli("forget", "verde", "--yes")
    cli("restore", "verde")
    model = teaching(cli)
    assert set(model) == {"red", "verde"}
    assert (str(tree / "blue" / "0.jpg"), 0) not in model["red"][1]
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    shutil.rmtree(cli.library / "backups")
    assert check_code(cli) == 3
    cli.json("repair")
    cli("index", str(tree), "-q")
    assert cli("check").stdout.strip() == "no problems found"
    assert teaching(cli) == model
    forgotten = jr.Journal(cli.library / jr.JOURNAL).replay().state.forgotten
    assert [f.cls.name for f in forgotten] == ["blue"]


def lose_catalog(library: Path, backups: bool = False) -> None:
    """The catalog lost with its -wal/-shm files (and its backups, unless ``backups``)."""
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (library / name).unlink(missing_ok=True)
    if not backups:
        shutil.rmtree(library / "backups")


class Forgotten(tuple):
    """A forgotten class as ``classes --forgotten`` lists it: (name, examples, negatives,
    forgotten at); equal to another when forgotten within a second of it (the journal's record
    and the catalog's row of one forget are stamped a moment apart)."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, tuple) and self[:3] == other[:3] and abs(self[3] - other[3]) < 1.0  # type: ignore[operator]
        )

    __hash__ = tuple.__hash__


def forgotten(cli: CLI) -> list[Forgotten]:
    return [
        Forgotten((f["name"], f["examples"], f["negatives"], f["forgotten_at"]))
        for f in cli.json("classes", "--forgotten")
    ]


def test_forgotten_classes_can_be_listed_and_restored_after_the_catalog_is_lost(lib) -> None:
    """A forgotten class stays restorable (``classes --forgotten``, ``restore``) when the
    catalog, its -wal/-shm files and its backups are lost: `repair` puts the forgotten classes
    the journal keeps back into the catalog; one forgotten and then restored stays a class."""
    cli, tree = lib
    teach_after_backup(cli, tree)
    cli("learn", "blue", str(tree / "blue" / "0.jpg"), "--not", str(tree / "red" / "3.jpg"))
    model = teaching(cli)
    cli("forget", "blue", "--yes")
    cli("forget", "green", "--yes")
    cli("restore", "green")
    kept = forgotten(cli)
    assert [k[:3] for k in kept] == [("blue", 1, 1)]
    lose_catalog(cli.library)
    cli.json("repair")
    assert forgotten(cli) == kept  # before any index
    cli("index", str(tree), "-q")
    assert cli("check").stdout.strip() == "no problems found"
    assert forgotten(cli) == kept
    assert set(teaching(cli)) == {"red", "green"}
    cli("restore", "blue")
    assert teaching(cli) == model and forgotten(cli) == []
    assert cli("check").stdout.strip() == "no problems found"


def test_a_backup_older_than_a_forget_and_a_restore_lists_each_forgotten_class_once(lib) -> None:
    """The backup holds ``blue`` forgotten and ``red`` live; since then ``blue`` was restored
    and ``red`` forgotten. After the catalog is lost, `repair` (from that backup and the
    journal) lists ``red`` alone as forgotten, once, and restores it as it was."""
    cli, tree = lib
    cli("learn", "blue", str(tree / "blue" / "0.jpg"), str(tree / "blue" / "1.jpg"))
    cli("forget", "blue", "--yes")
    cli("index", str(tree), "-q")  # the backup: red live, blue forgotten
    cli("restore", "blue")
    model = teaching(cli)
    cli("forget", "red", "--yes")
    kept = forgotten(cli)
    assert [k[0] for k in kept] == ["red"]
    lose_catalog(cli.library, backups=True)
    report = repaired_and_indexed(cli, tree)
    assert report["restored"]
    assert forgotten(cli) == kept
    assert set(teaching(cli)) == {"blue"}
    cli("restore", "red")
    assert teaching(cli) == model and forgotten(cli) == []
    assert cli("check").stdout.strip() == "no problems found"


def test_2_nothing_says_which_backbone_the_library_starts_anew(lib, tiny_keras_model: Path) -> None:
    cli, tree = lib
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm", jr.JOURNAL):
        (cli.library / name).unlink(missing_ok=True)
    shutil.rmtree(cli.library / "backups")
    report = cli.json("repair")
    assert "index your folders again" in report["started_anew"]
    cli("index", str(tree), "--model", str(tiny_keras_model), "--layer", "pool", "-q")
    assert cli("check").stdout.strip() == "no problems found"
    all_indexed(cli, tree)


# ------------------------------------------------------------------------------------ item 3
def raw_vectors(library: Path) -> tuple[np.memmap, np.ndarray]:
    folder = library / "vectors"
    manifest = json.loads((folder / "manifest.json").read_text())
    g, dim = manifest["generation"], manifest["dim"]
    ids = np.fromfile(folder / f"ids-{g}.i64", dtype=np.int64)
    vec = np.memmap(folder / f"vectors-{g}.f16", dtype=np.float16, mode="r+")
    return vec.reshape(-1, dim), ids


def test_3_one_vector_changed_in_place_still_a_unit_vector(lib) -> None:
    cli, tree = lib
    vec, ids = raw_vectors(cli.library)
    x = np.roll(vec[3].astype(np.float32), 1)
    vec[3] = (x / np.linalg.norm(x)).astype(np.float16)
    vec.flush()
    del vec
    assert "vectors fail their checksum" in cli("check", ok=False).stdout
    report = repaired_and_indexed(cli, tree)
    assert report["vector_problems"] and report["vectors_dropped"] == 12 == report["to_embed"]
    assert report["problems"] == []  # the catalog was fine
    all_indexed(cli, tree)


def test_3_garbage_in_the_vectors(lib) -> None:
    cli, tree = lib
    path = next((cli.library / "vectors").glob("vectors-*.f16"))
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 3)
        f.write(np.random.default_rng(3).bytes(100))
    report = repaired_and_indexed(cli, tree)
    assert report["vectors_dropped"] >= 1
    all_indexed(cli, tree)


# ------------------------------------------------------------------------------------ the journal
def test_marks_taken_back_and_forgotten_classes_stay_so(lib) -> None:
    cli, tree = lib
    teach_after_backup(cli, tree)
    with Library(cli.library) as library:
        blue = library.folder.open_catalog().image_by_path(str(tree / "blue" / "0.jpg")).id
        red2 = library.folder.open_catalog().image_by_path(str(tree / "red" / "2.jpg")).id
        library.learn_ids("red", undo=[blue, red2])  # the page's Undo, twice
    cli("forget", "green")
    model = teaching(cli)
    assert set(model) == {"red"} and len(model["red"][1]) == 2
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    repaired_and_indexed(cli, tree)  # from the backup, which had neither the marks nor green
    assert teaching(cli) == model
    forgotten = jr.Journal(cli.library / jr.JOURNAL).replay().state.forgotten
    assert [f.cls.name for f in forgotten] == ["green"]  # restorable
    assert len(forgotten[0].cls.examples) == 2


def test_a_command_killed_between_its_record_and_the_commit_never_happened(lib) -> None:
    cli, tree = lib
    model = teaching(cli)
    with Library(cli.library) as library:
        seq = library.folder.open_catalog().get_meta("journal_seq")
    journal = jr.Journal(cli.library / jr.JOURNAL)
    journal.append({"seq": seq + 1, "t": 1.0, "op": "forget", "class": "red"})  # then killed
    assert check_code(cli) == 0  # the trace of a kill, not damage
    assert teaching(cli) == model
    cli("learn", "blue", str(tree / "blue" / "1.jpg"))  # numbered seq + 1 again: voids it
    state = journal.replay().state
    assert set(state.classes) == {"red", "blue"} and state.forgotten == []
    assert check_code(cli) == 0


def test_a_torn_record_is_cut_and_the_journal_goes_on(lib) -> None:
    cli, tree = lib
    model = teaching(cli)
    path = cli.library / jr.JOURNAL
    with open(path, "ab") as f:  # a kill in the middle of an append
        f.write(jr.encode_line({"seq": 99, "op": "forget", "class": "red"})[:40])
    assert check_code(cli) == 0 and teaching(cli) == model
    cli("learn", "blue", str(tree / "blue" / "1.jpg"))
    assert jr.Journal(path).replay().complete
    assert check_code(cli) == 0


def test_a_stale_catalog_is_refused_then_rolled_forward(lib) -> None:
    cli, tree = lib
    checkpoint(cli.library)
    old = (cli.library / "catalog.db").read_bytes()
    model = teach_after_backup(cli, tree)
    checkpoint(cli.library)
    (cli.library / "catalog.db").write_bytes(old)  # an old copy put back by hand
    result = cli("learn", "blue", str(tree / "blue" / "1.jpg"), ok=False)
    assert result.exit_code == 3 and "older than the teaching journal" in result.stderr
    repaired_and_indexed(cli, tree)
    assert teaching(cli) == model


@pytest.mark.parametrize("damage", ["garbage", "deleted", "truncated"])
def test_a_damaged_journal_is_found_and_rewritten_from_the_catalog(lib, damage: str) -> None:
    cli, tree = lib
    model = teach_after_backup(cli, tree)
    path = cli.library / jr.JOURNAL
    size = path.stat().st_size
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        os.truncate(path, size // 2)
    else:
        with open(path, "r+b") as f:
            f.seek(size // 3)
            f.write(b"\x00" * 64)
    result = cli("check", ok=False)
    assert result.exit_code == 3 and result.stdout.startswith("teaching: the teaching journal")
    if damage != "garbage":  # (garbage in the middle is only found by reading it all)
        refused = cli("learn", "blue", str(tree / "blue" / "1.jpg"), ok=False)
        assert refused.exit_code == 3 and "run `finder repair`" in refused.stderr
    repaired_and_indexed(cli, tree)
    assert teaching(cli) == model
    # and the rewritten journal alone brings everything back
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    shutil.rmtree(cli.library / "backups")
    repaired_and_indexed(cli, tree)
    assert teaching(cli) == model


def test_a_damaged_journal_never_brings_back_a_class_the_sound_catalog_forgot(lib) -> None:
    """The journal read up to damage still holds ``green``, forgotten after the damage: the
    sound catalog knows better (chaos_teach found this)."""
    cli, tree = lib
    cli("learn", "green", str(tree / "green" / "0.jpg"))
    path = cli.library / jr.JOURNAL
    start = path.stat().st_size  # the next record's first byte
    cli("learn", "red", "--not", str(tree / "blue" / "0.jpg"))
    cli("forget", "green")
    model = teaching(cli)
    with open(path, "r+b") as f:
        f.seek(start + 20)
        f.write(b"garbage")
    report = repaired_and_indexed(cli, tree)
    assert report["teaching"]["journal_problem"] and report["teaching"]["from_journal"] == []
    assert teaching(cli) == model


def test_an_empty_journal_file_is_what_a_kill_left_not_damage(lib) -> None:
    cli, tree = lib
    path = cli.library / jr.JOURNAL
    path.write_bytes(b"")  # killed right after creating it (as in a new library)
    with sqlite3.connect(cli.library / "catalog.db") as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'journal_seq'")
    conn.close()
    assert check_code(cli) == 0
    cli("index", str(tree), "-q")  # records the roots into it
    cli("learn", "blue", str(tree / "blue" / "1.jpg"))
    state = jr.Journal(path).replay().state
    assert set(state.classes) == {"red", "blue"} and str(tree) in state.roots
    assert check_code(cli) == 0


def test_the_journal_is_compacted_and_keeps_every_change(lib, monkeypatch) -> None:
    cli, tree = lib
    monkeypatch.setattr(jr, "COMPACT_MIN_BYTES", 1)
    path = cli.library / jr.JOURNAL
    photos = sorted(tree.rglob("*.jpg"))
    for k, photo in enumerate(photos):
        flag = "--add" if photo.parent.name == "red" else "--not"
        cli("learn", "red", flag, str(photo))
        if k == 5:
            cli("learn", "blue", str(tree / "blue" / "0.jpg"))
    lines = path.read_bytes().count(b"\n")
    assert lines < 12  # compacted along the way (a snapshot and a few changes since)
    model = teaching(cli)
    assert check_code(cli) == 0
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    shutil.rmtree(cli.library / "backups")
    repaired_and_indexed(cli, tree)
    assert teaching(cli) == model


def test_a_library_from_before_the_journal_gets_one(lib) -> None:
    cli, tree = lib
    cli("learn", "green", str(tree / "green" / "0.jpg"))
    cli("forget", "green", "--yes")
    kept = forgotten(cli)
    (cli.library / jr.JOURNAL).unlink()
    with sqlite3.connect(cli.library / "catalog.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'journal_seq'")
    conn.close()
    model = teaching(cli)
    assert check_code(cli) == 0  # nothing was ever recorded: nothing missing
    cli("learn", "blue", str(tree / "blue" / "1.jpg"))
    model["blue"] = teaching(cli)["blue"]
    state = jr.Journal(cli.library / jr.JOURNAL).replay().state
    assert set(state.classes) == {"red", "blue"}
    assert [f.cls.name for f in state.forgotten] == ["green"]  # the catalog's forgotten too
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    repaired_and_indexed(cli, tree)
    assert teaching(cli) == model
    assert forgotten(cli) == kept


def test_a_replayed_state_applied_onto_an_empty_catalog_matches_moved_photos(
    lib, tmp_path: Path
) -> None:
    """``apply_state``: the journal's classes put into a catalog; an example whose photo moved
    is matched back to it by its content fingerprint."""
    from finder.store import teaching

    cli, tree = lib
    model = teach_after_backup(cli, tree)
    moved = tmp_path / "elsewhere"
    shutil.copytree(tree, moved)
    state = jr.Journal(cli.library / jr.JOURNAL).replay().state
    with Library(cli.library) as library:
        cat = library.folder.open_catalog_for_writing()
        cat.db.execute(
            "UPDATE images SET path = CAST(replace(CAST(path AS TEXT), ?, ?) AS BLOB)",
            [str(tree), str(moved)],
        )
        for name in cat.class_names():
            cat.forget_class(name)
        matched = teaching.apply_state(cat, state)
        assert matched == sum(len(m) for _, m in model.values())
        got = {
            n: sorted(
                (p.replace(str(moved), str(tree)), "positive" if lab else "negative")
                for p, lab in library.examples(n)
            )
            for n in cat.class_names()
        }
        assert all(p.startswith(str(moved)) for n in got for p, _ in library.examples(n))
    assert got == {n: marks for n, (_, marks) in model.items()}


def origins(library: Path) -> dict[str, list[tuple[str, int, str | None]]]:
    """Every class's marks with where each comes from, as the catalog holds them."""
    with Library(library) as lib:
        catalog = lib.folder.open_catalog()
        return {
            name: sorted((Path(e.path).name, e.label, e.origin) for e in catalog.examples(name))
            for name in catalog.class_names()
        }


def test_where_each_mark_comes_from_survives_the_loss_of_catalog_and_backups(lib) -> None:
    """Issue 23: a mark's origin (an example given, a ✓ or ✗ on a photo finder showed, a strip's
    photo) sizes the class, so it is taught as the mark is: journalled, and put back by
    `repair` when the catalog, its -wal/-shm files and its backups are all lost."""
    cli, tree = lib
    cli("learn", "red", "--add", str(tree / "red" / "2.jpg"), "--not", str(tree / "blue" / "1.jpg"))
    with Library(cli.library) as library:
        strip = library.strip("red", 3)  # one drawn at random, two chosen
        drawn = next(m for m in strip.photos if m.random)
        chosen = next(m for m in strip.photos if not m.random)
        library.learn_ids("red", [drawn.key], [chosen.key])
    before = origins(cli.library)
    by_origin: dict[str | None, list[int]] = {}
    for _, label, origin in before["red"]:
        by_origin.setdefault(origin, []).append(label)
    # red/0 and red/1 given; red/2 and blue/1 marked on what finder showed; the strip's
    # drawn photo ✓ and chosen one ✗
    assert by_origin == {"example": [1, 1], "top": [0, 1], "random": [1], "strip": [0]}, before
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (cli.library / name).unlink(missing_ok=True)
    shutil.rmtree(cli.library / "backups")
    cli.json("repair")
    assert origins(cli.library) == before
    cli("index", str(tree), "-q")
    assert cli("check").stdout.strip() == "no problems found"
    assert origins(cli.library) == before
