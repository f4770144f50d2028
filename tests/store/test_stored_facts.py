"""Photo facts in the catalog: the migration, the filters, each checked against a brute-force
filter of every row in Python."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from finder.errors import UsageError
from finder.ingest.crawl import FileFact
from finder.ingest.facts import PhotoFacts
from finder.show.text import error_line
from finder.store import facts
from finder.store.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog
from finder.store.facts import Filters, distance_km

CAMERAS = [("Canon", "Canon EOS 5D"), ("NIKON CORPORATION", "NIKON D750"), ("Apple", "iPhone 12")]


def random_facts(rng: np.random.Generator, k: int) -> PhotoFacts:
    year = int(rng.integers(2010, 2024))
    taken = f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}T12:00:00"
    make, model = CAMERAS[k % len(CAMERAS)] if k % 4 else (None, None)
    if k % 5 == 0:
        lat, lon = None, None
    elif k % 7 == 0:  # near the antimeridian, both sides
        lat, lon = float(rng.uniform(-20, 20)), float(rng.choice([-179.9, 179.9]))
    else:
        lat, lon = float(rng.uniform(-89, 89)), float(rng.uniform(-180, 180))
    return PhotoFacts(
        width=100,
        height=80,
        taken=taken,
        offset_minutes=60 if k % 2 else None,
        date_source="exif" if k % 3 else "file",
        make=make,
        model=model,
        lat=lat,
        lon=lon,
    )


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[Catalog, dict[int, tuple[str, PhotoFacts]], Path]:
    """A catalog of 600 ok images under folders a/, a/b/, a/b2/, c/ with random facts."""
    tmp_path = tmp_path_factory.mktemp("facts")
    root = tmp_path / "photos"
    for sub in ("a/b", "a/b2", "c"):
        (root / sub).mkdir(parents=True)
    cat = Catalog(tmp_path / "c.db")
    rng = np.random.default_rng(0)
    folders = ["a", "a/b", "a/b2", "c"]
    paths = [str(root / folders[k % 4] / f"p{k}.jpg") for k in range(600)]
    ids = cat.insert_pending([FileFact(p, 1, 1) for p in paths])
    rows = {i: (p, random_facts(rng, k)) for k, (i, p) in enumerate(zip(ids, paths, strict=True))}
    ok = [i for i in ids if i % 10]  # every tenth stays pending: never in an answer
    cat.record_results([(i, None) for i in ok], [], [(i, rows[i][1]) for i in ok])
    return cat, {i: rows[i] for i in ok}, root


def brute(rows: dict[int, tuple[str, PhotoFacts]], f: Filters) -> list[int]:
    out = []
    for i, (path, pf) in rows.items():
        if f.after and not (pf.taken and pf.taken >= f.after):
            continue
        if f.before and not (pf.taken and pf.taken < f.before):
            continue
        if f.camera and f.camera.lower() not in f"{pf.make or ''} {pf.model or ''}".lower():
            continue
        if f.camera and not (pf.make or pf.model):
            continue
        if f.under and not path.startswith(f.under + "/"):
            continue
        if f.near:
            if pf.lat is None:
                continue
            if distance_km(f.near, np.array([pf.lat]), np.array([pf.lon]))[0] > f.within_km:
                continue
        out.append(i)
    return sorted(out)


def test_a_version_1_catalog_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    MIGRATIONS[0](db)
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["meta"].insert({"key": "schema_version", "value": "1"})
    db["images"].insert(
        {"path": b"/p/x.jpg", "size": 3, "mtime_ns": 4, "status": "ok", "fingerprint": "f"}
    )
    db.conn.commit()
    db.conn.close()
    cat = Catalog(path)
    assert cat.get_meta("schema_version") == SCHEMA_VERSION >= 2
    row = cat.image_by_path("/p/x.jpg")
    assert (row.status, row.fingerprint) == ("ok", "f")
    assert cat.missing_facts_under("/p") == [(row.id, "/p/x.jpg")]
    assert cat.fact_counts() == {
        "with_date": 0,
        "with_file_date": 0,
        "with_position": 0,
        "with_keywords": 0,
        "keywords": 0,
    }
    cat.record_facts([(row.id, PhotoFacts(10, 20, "2001-02-03T04:05:06", None, "exif"))])
    assert cat.missing_facts_under("/p") == []
    assert cat.fact_counts()["with_date"] == 1


def test_counts(filled) -> None:
    cat, rows, _ = filled
    got = cat.fact_counts()
    assert got["with_date"] == sum(1 for _, f in rows.values() if f.date_source == "exif")
    assert got["with_file_date"] == sum(1 for _, f in rows.values() if f.date_source == "file")
    assert got["with_position"] == sum(1 for _, f in rows.values() if f.lat is not None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"after": "2015"},
        {"before": "2013-06"},
        {"after": "2012-03-04", "before": "2012-09-30T18:00"},
        {"camera": "canon"},
        {"camera": "nikon d7"},
        {"camera": "IPHONE"},
        {"camera": "no such camera"},
        {"near": "40,10", "within_km": 3000},
        {"near": (-45.0, -60.0), "within_km": 2500},
        {"near": "0,180", "within_km": 500},  # across the antimeridian
        {"near": "89.5,0", "within_km": 800},  # a pole inside the circle
        {"after": "2014", "camera": "canon", "near": "10,10", "within_km": 8000},
    ],
)
def test_filters_match_a_brute_force_filter(filled, kwargs) -> None:
    cat, rows, root = filled
    f = Filters(**kwargs)
    expected = brute(rows, f)
    assert facts.allowed(cat, f).tolist() == expected
    sample = np.asarray(sorted(rows)[::3], dtype=np.int64)
    assert facts.passing(cat, f, sample).tolist() == [i for i in expected if i in set(sample)]
    # ``limit`` counts the rows of the SQL part (for --near: the bounding box)
    assert facts.allowed(cat, f, limit=len(rows)).tolist() == expected
    if expected and f.near is None:
        assert facts.allowed(cat, f, limit=len(expected)).tolist() == expected
        assert facts.allowed(cat, f, limit=len(expected) - 1) is None


def test_folder_filter_excludes_sibling_prefix_folders(filled) -> None:
    cat, rows, root = filled
    # (every image under the folder, pending ones too: only ok ones have vectors to be found)
    paths = cat.paths_for(range(1, 1000))
    under_b = facts.allowed(cat, Filters(under=root / "a" / "b")).tolist()
    assert under_b == sorted(i for i, p in paths.items() if "/a/b/" in p)
    assert set(under_b) >= {i for i, (p, _) in rows.items() if "/a/b/" in p}
    assert not any("/a/b2/" in paths[i] for i in under_b)
    under_a = facts.allowed(cat, Filters(under=str(root / "a") + "/")).tolist()
    assert under_a == sorted(i for i, p in paths.items() if "/a/" in p)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"after": "2019-13-01"}, "--after: cannot read"),
        ({"before": "yesterday"}, "--before: cannot read"),
        ({"after": "2020", "before": "2019"}, "is not before"),
        ({"near": "91,0"}, "off the globe"),
        ({"near": "48.8"}, "LAT,LON"),
        ({"near": "north,east"}, "LAT,LON"),
        ({"within_km": 5}, "goes with --near"),
        ({"near": "1,2", "within_km": -1}, "--within"),
        ({"camera": "  "}, "--camera"),
        ({"under": "/no/such/folder/anywhere"}, "no such folder"),
    ],
)
def test_bad_filter_values_are_one_line_usage_errors(kwargs, message) -> None:
    with pytest.raises(UsageError) as info:
        Filters(**kwargs)
    said = error_line(info.value)  # as the command line says it
    assert re.search(message, said), said
    assert "\n" not in str(info.value)


def test_under_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "x.jpg"
    f.write_bytes(b"x")
    with pytest.raises(UsageError, match="not a folder"):
        Filters(under=f)


def test_dates_parse_as_the_start_of_their_period() -> None:
    assert Filters(after="2019").after == "2019-01-01T00:00:00"
    assert Filters(after="2019-6").after == "2019-06-01T00:00:00"
    assert Filters(before="2019-06-30 14:05").before == "2019-06-30T14:05:00"
    assert Filters(near="-33.8, 151.2").within_km == facts.DEFAULT_WITHIN_KM
    assert not Filters().active and Filters(camera="x").active
