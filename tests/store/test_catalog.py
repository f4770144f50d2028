"""The SQLite catalog: schema and migrations, BLOB paths, set-based scans."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from finder.errors import LibraryError
from finder.ingest.crawl import FileFact
from finder.store.catalog import SCHEMA_VERSION, Catalog, path_range


def test_schema_version_recorded_and_reopen_is_idempotent(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    assert cat.get_meta("schema_version") == SCHEMA_VERSION
    assert {"images", "classes", "examples", "meta"} <= set(cat.db.table_names())
    cat.close()
    again = Catalog(tmp_path / "c.db")
    assert again.get_meta("schema_version") == SCHEMA_VERSION
    again.close()


def test_a_version_1_catalog_keeps_its_cut_offs_stored_once(tmp_path: Path) -> None:
    """Schema 1 kept the cut-off twice (a classes column and the head's JSON); migrating to 2
    keeps the head's, takes the column's where the head has none, and drops the column."""
    import json

    import sqlite_utils

    from finder.store.catalog import MIGRATIONS

    db = sqlite_utils.Database(tmp_path / "c.db")
    db["meta"].create({"key": str, "value": str}, pk="key")
    MIGRATIONS[0](db)
    db["meta"].insert({"key": "schema_version", "value": "1"})
    row = {"backbone": "bb", "n_pos": 2, "n_neg": 0, "created": 1.0, "updated": 1.0}
    db["classes"].insert(
        {"name": "a", "head": json.dumps({"threshold": 0.3}), "threshold": 0.3, **row}
    )
    db["classes"].insert({"name": "b", "head": json.dumps({"w": "x"}), "threshold": 0.7, **row})
    db.conn.close()
    cat = Catalog(tmp_path / "c.db")
    assert cat.get_meta("schema_version") == SCHEMA_VERSION >= 2
    assert "threshold" not in cat.db["classes"].columns_dict
    assert cat.get_class("a")["threshold"] == 0.3
    assert cat.get_class("b")["threshold"] == 0.7 and cat.get_class("b")["head"]["threshold"] == 0.7
    cat.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.set_meta("schema_version", SCHEMA_VERSION + 1)
    cat.close()
    with pytest.raises(LibraryError, match="newer finder"):
        Catalog(tmp_path / "c.db")


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="damaged.*finder repair"):
        Catalog(bad)


def test_paths_round_trip_exactly(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    names = [
        os.fsdecode(b"/p/caf\xe9.jpg"),
        "/p/日本語.jpg",
        "/p/with space/and'quote\".jpg",
        os.fsdecode(b"/p/\xff\xfe.png"),
    ]
    ids = cat.insert_pending([FileFact(n, 1, 2) for n in names])
    back = cat.paths_for(ids)
    assert [back[i] for i in ids] == names
    assert [os.fsencode(back[i]) for i in ids] == [os.fsencode(n) for n in names]
    assert cat.image_by_path(names[0]).id == ids[0]
    raw = sqlite3.connect(tmp_path / "c.db").execute("SELECT path FROM images").fetchall()
    assert {r[0] for r in raw} == {os.fsencode(n) for n in names}


def test_path_range_covers_exactly_the_folder(tmp_path: Path) -> None:
    lo, hi = path_range("/photos/a")
    inside = [b"/photos/a/x.jpg", b"/photos/a/b/c.jpg"]
    outside = [b"/photos/a.jpg", b"/photos/ab/x.jpg", b"/photos/a", b"/photos/b/x.jpg"]
    assert all(lo <= p < hi for p in inside)
    assert not any(lo <= p < hi for p in outside)
    assert path_range("/") == (b"/", b"0")


def test_scan_sorts_unchanged_changed_new_gone(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    ids = cat.insert_pending(
        [
            FileFact("/r/same.jpg", 10, 100),
            FileFact("/r/edit.jpg", 10, 100),
            FileFact("/r/gone.jpg", 10, 100),
            FileFact("/other/x.jpg", 10, 100),
            FileFact("/r/pend.jpg", 10, 100),
        ]
    )
    cat.record_results([(i, "fp") for i in ids[:4]], [])
    cat.load_walk(
        [
            FileFact("/r/same.jpg", 10, 100),
            FileFact("/r/edit.jpg", 11, 100),
            FileFact("/r/new.jpg", 5, 5),
            FileFact("/r/pend.jpg", 10, 100),
        ]
    )
    scan = cat.scan("/r")
    assert scan.unchanged == 1
    assert sorted((i, f.path, s) for i, f, s in scan.redo) == [
        (ids[1], "/r/edit.jpg", "ok"),
        (ids[4], "/r/pend.jpg", "pending"),
    ]
    assert [f.path for f in scan.new] == ["/r/new.jpg"]
    assert [r.path for r in scan.gone] == ["/r/gone.jpg"]  # /other is not under /r


def test_examples_and_classes(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.add_examples("cat", [("/a.jpg", 1, b"\x00" * 8), ("/b.jpg", 0, b"\x01" * 8)])
    cat.add_examples("cat", [("/b.jpg", 1, b"\x02" * 8)])  # relabelled
    ex = cat.examples("cat")
    assert [(e.path, e.label, e.vector) for e in ex] == [
        ("/a.jpg", 1, b"\x00" * 8),
        ("/b.jpg", 1, b"\x02" * 8),
    ]
    cat.save_class("cat", {"w": "x", "threshold": 0.4}, "bb", 2, 0)
    cat.save_class("cat", {"w": "y", "threshold": 0.6}, "bb", 3, 1)
    c = cat.get_class("cat")
    assert c["head"] == {"w": "y", "threshold": 0.6} and c["threshold"] == 0.6 and c["n_pos"] == 3
    assert cat.class_names() == ["cat"]
    cat.forget_class("cat")
    assert cat.get_class("cat") is None and cat.examples("cat") == []


def test_has_status_agrees_with_counts(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")

    def agrees() -> bool:
        return all(cat.has_status(s) == (n > 0) for s, n in cat.counts().items())

    assert agrees() and not cat.has_status("ok")
    ids = cat.insert_pending([FileFact(f"/r/{i}.jpg", 10, 100) for i in range(3)])
    cat.record_results([(ids[0], "fp")], [(ids[1], "not an image")])
    assert agrees() and cat.counts() == {"pending": 1, "ok": 1, "failed": 1}
    cat.record_results([(ids[2], "fp")], [])
    assert agrees() and not cat.has_status("pending") and cat.has_status("ok")
