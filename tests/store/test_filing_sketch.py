"""What a filed class was trained against, kept to decide whether a refresh retrains it
(:mod:`finder.store.filing`): the sketch of its counter-examples (the migration that adds it,
its round trip), and the drift estimated from two sketches. Real SQLite files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from finder.store.catalog import SCHEMA_VERSION, Catalog
from finder.store.filing import (
    MAX_COUNTER_EXAMPLES,
    SKETCH_SIZE,
    FilingRecord,
    _sample,
    digest,
    drift,
    sketch,
)
from tests.store.old_catalog import catalog_before


def test_a_catalog_from_before_sketches_keeps_its_filings_with_no_sketch(tmp_path: Path) -> None:
    conn, db = catalog_before(tmp_path / "catalog.db", "``sketch``")
    db.execute(
        "INSERT INTO filing(class_name, source, key, siblings, digest) VALUES (?, ?, ?, ?, ?)",
        ["cat", "keyword", "Pets|Cat", json.dumps(["Pets|Dog"]), "abc"],
    )
    conn.commit()
    conn.close()
    cat = Catalog(tmp_path / "catalog.db")
    assert cat.get_meta("schema_version") == SCHEMA_VERSION
    # not known: the refresh retrains it (finder.filing._fits)
    assert cat.get_filing("cat") == FilingRecord("cat", "keyword", "Pets|Cat", ("Pets|Dog",), "abc")
    trained = cat.get_filing("cat").trained_on("cat", np.arange(5), np.arange(10, 20), "bb", 0)
    with cat.transaction():
        cat.save_filing(trained)
        cat.save_filing(
            FilingRecord("dog", "keyword", "Pets|Dog").trained_on(
                "dog", np.arange(5), np.zeros(0, np.int64), "bb", 0
            )
        )
    cat.close()
    again = Catalog(tmp_path / "catalog.db")
    assert again.get_filing("cat") == trained and trained.sketch is not None
    assert len(trained.sketch) == 10 * 8 and trained.digest == digest(np.arange(5), "bb", 0)
    assert again.get_filing("dog").sketch == b""  # no counter-examples: known, empty
    again.close()


def test_the_sketch_of_the_sample_is_the_sketch_of_every_counter_example() -> None:
    ids = np.arange(1, 50_000, 3, dtype=np.int64)
    drawn = _sample(ids, MAX_COUNTER_EXAMPLES, seed=7)
    assert len(drawn) == MAX_COUNTER_EXAMPLES
    assert sketch(drawn, 7) == sketch(ids, 7) and len(sketch(ids, 7)) == SKETCH_SIZE * 8
    assert sketch(ids, 7) != sketch(ids, 8)  # the seed draws others


def test_drift_is_exact_on_small_sets_and_close_on_large_ones() -> None:
    few = np.arange(40, dtype=np.int64)
    assert drift(sketch(few, 0), sketch(few, 0)) == 0.0
    assert drift(sketch(few, 0), sketch(few[2:], 0)) == 2 / 40
    assert drift(sketch(few, 0), sketch(np.arange(100, 110), 0)) == 1.0
    assert drift(sketch(few[:0], 0), sketch(few[:0], 0)) == 0.0
    assert drift(sketch(few[:0], 0), sketch(few, 0)) == 1.0
    many = np.arange(20_000, dtype=np.int64)
    for changed, low, high in ((400, 0.0, 0.05), (4000, 0.1, 0.25)):
        moved = np.concatenate([many[changed // 2 :], np.arange(10**6, 10**6 + changed // 2)])
        true = 1 - (len(many) - changed // 2) / (len(many) + changed // 2)
        got = drift(sketch(many, 0), sketch(moved, 0))
        assert low < true < high and low <= got < high
        assert abs(got - true) < 4 * np.sqrt(true * (1 - true) / SKETCH_SIZE)
