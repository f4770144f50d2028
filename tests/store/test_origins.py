"""Where each mark comes from (``origin``: "example", "top", "strip", "random";
:mod:`finder.learn.origin`): kept by the catalog (the migration that adds it, a forget and a
restore, a class put back whole) and by the teaching journal (its records, a compaction, a
journal written before origins). Real SQLite files, real journal files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from finder.store import journal as jr
from finder.store.catalog import SCHEMA_VERSION, Catalog
from finder.store.journal import ClassState, Example, Journal, State
from tests.store.old_catalog import catalog_before


def vector(seed: int, dim: int = 8) -> bytes:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


def test_a_catalog_from_before_origins_keeps_its_marks_as_of_unknown_origin(
    tmp_path: Path,
) -> None:
    conn, db = catalog_before(tmp_path / "catalog.db", "``origin``")
    db.execute(
        "INSERT INTO examples(class_name, path, label, vector, added) VALUES (?, ?, ?, ?, ?)",
        ["cat", b"/p/a.jpg", 1, vector(1), 2.0],
    )
    conn.commit()
    conn.close()
    cat = Catalog(tmp_path / "catalog.db")
    assert cat.get_meta("schema_version") == SCHEMA_VERSION
    assert cat.example_rows("cat") == [("/p/a.jpg", 1, vector(1), 2.0, None)]
    cat.add_examples("cat", [("/p/b.jpg", 1, vector(2), "top"), ("/p/a.jpg", 1, vector(1), None)])
    assert [(e.path, e.origin) for e in cat.examples("cat")] == [
        ("/p/a.jpg", None),
        ("/p/b.jpg", "top"),
    ]
    cat.close()


def test_origins_follow_a_forget_a_restore_and_a_class_put_back(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.db")
    cat.save_class("cat", {"threshold": 0.5}, "bb", 2, 1)
    marks = [
        ("/p/a.jpg", 1, vector(1), "example"),
        ("/p/b.jpg", 1, vector(2), "random"),
        ("/p/c.jpg", 0, vector(3), "strip"),
    ]
    cat.add_examples("cat", marks)
    want = [(p, lab, o) for p, lab, _, o in marks]
    assert [(p, lab, o) for p, lab, _, _, o in cat.example_rows("cat")] == want
    cat.forget_class("cat", at=time.time())
    (record, rows), *_ = cat.forgotten_entries()
    assert [(p, lab, o) for p, lab, _, _, o in rows] == want
    cat.put_forgotten([(record, rows)])  # what repair does with the journal's forgotten classes
    assert [(p, lab, o) for p, lab, _, _, o in cat.forgotten_entries()[0][1]] == want
    assert cat.restore_class("cat")
    assert [(p, lab, o) for p, lab, _, _, o in cat.example_rows("cat")] == want
    record = cat.get_class("cat")
    cat.put_class(record, [(p, lab, v, 5.0, "top") for p, lab, v, _, _ in cat.example_rows("cat")])
    assert {o for *_, o in cat.example_rows("cat")} == {"top"}
    cat.close()


def _class(origins: dict[str, str | None]) -> ClassState:
    cls = ClassState("cat", {"threshold": 0.4}, "bb", 2, 1, 1.0, 2.0)
    for k, (path, origin) in enumerate(origins.items()):
        cls.examples[path] = Example(path, int(k < 2), vector(k), f"fp{k}", 10, 1.5, origin)
    return cls


def test_the_journal_keeps_each_marks_origin_through_replay_and_compaction(
    tmp_path: Path,
) -> None:
    origins = {"/p/a.jpg": "example", "/p/b.jpg": "top", "/p/c.jpg": "random"}
    journal = Journal(tmp_path / jr.JOURNAL)
    record = {"seq": 1, "t": 3.0, "op": "class", **jr.class_to_json(_class(origins))}
    journal.append(record)
    replay = journal.replay()
    assert replay.complete and replay.records == 1
    got = replay.state.classes["cat"].examples
    assert {p: e.origin for p, e in got.items()} == origins
    journal.compact(replay.state)
    again = journal.replay().state.classes["cat"].examples
    assert {p: e.origin for p, e in again.items()} == origins
    assert {p: e.vector for p, e in again.items()} == {p: e.vector for p, e in got.items()}


def test_a_journal_from_before_origins_reads_them_as_unknown_and_a_bad_one_is_damage(
    tmp_path: Path,
) -> None:
    old = jr.class_to_json(_class({"/p/a.jpg": "example", "/p/b.jpg": "top"}))
    old["examples"] = [entry[:2] for entry in old["examples"]]  # [path, label]: format 1 as was
    journal = Journal(tmp_path / jr.JOURNAL)
    journal.append({"seq": 1, "t": 3.0, "op": "class", **old})
    state = journal.replay().state
    assert {e.origin for e in state.classes["cat"].examples.values()} == {None}
    bad = jr.class_to_json(_class({"/p/a.jpg": "example", "/p/b.jpg": "top"}))
    bad["examples"][1][2] = 7
    journal.append({"seq": 2, "t": 4.0, "op": "class", **bad})
    replay = journal.replay()
    assert replay.problem and "origin" in replay.problem
    assert State() != replay.state and replay.state.seq == 1
