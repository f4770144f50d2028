"""Keywords in the catalog: the migration from the previous schema, photos of a keyword with its
descendants, counts with the hierarchy's nodes, class names, folders, deletions; a real SQLite
file, checked against brute force over the rows written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from finder.ingest.crawl import FileFact
from finder.ingest.facts import PhotoFacts
from finder.learn.names import class_name
from finder.store.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog
from finder.store.keywords import FolderCount, KeywordCount

VOCABULARY = [
    "Animals|Pets|Rex",
    "Animals|Pets|Tom",
    "Animals|Birds",
    "Animal",  # a prefix of "Animals" as text, not a node of it
    "People|Rex",
    "Places|France|Paris",
    "Holiday",
]


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Catalog, dict[int, set[str]], dict[int, str], set[int]]:
    """200 images in folders a/, a/b/, a/b2/, c/ with random keywords from the photo and its
    sidecar; every tenth left pending, every seventh failed."""
    cat = Catalog(tmp_path / "c.db")
    rng = np.random.default_rng(1)
    folders = ["a", "a/b", "a/b2", "c"]
    root = tmp_path / "photos"
    paths = [str(root / folders[k % 4] / f"p{k}.jpg") for k in range(200)]
    ids = cat.insert_pending([FileFact(p, 1, 1) for p in paths])
    truth: dict[int, set[str]] = {}
    embedded, sidecars = [], []
    for i in ids:
        mine = set(rng.choice(VOCABULARY, size=int(rng.integers(0, 3)), replace=False))
        split = int(rng.integers(0, len(mine) + 1))
        words = sorted(mine)
        embedded.append((i, PhotoFacts(10, 10, keywords=tuple(words[:split]))))
        sidecars.append((i, f"1:1:p{i}.jpg.xmp", words[split:], None))
        truth[i] = mine
    ok = [i for i in ids if i % 10 and i % 7]
    failed = [(i, "bad") for i in ids if not i % 7]
    cat.record_results([(i, None) for i in ok], failed, [f for f in embedded if f[0] in ok])
    cat.record_sidecars(sidecars)
    for i in ids:
        if i not in ok:  # a pending or failed photo's embedded keywords are not read yet
            truth[i] = {w for w in truth[i] if w in cat.keywords_of(i)}
    return cat, truth, dict(zip(ids, paths, strict=True)), set(ok)


def only(truth: dict[int, set[str]], ids: set[int]) -> dict[int, set[str]]:
    return {i: v for i, v in truth.items() if i in ids}


def brute_images(truth: dict[int, set[str]], path: str, descendants: bool) -> list[int]:
    return sorted(
        i
        for i, words in truth.items()
        if any(w == path or (descendants and w.startswith(path + "|")) for w in words)
    )


@pytest.mark.parametrize(
    "path", ["Animals", "Animals|Pets", "Animals|Pets|Rex", "Animal", "Rex", "Holiday", "Places"]
)
def test_images_of_a_keyword_with_and_without_descendants(filled, path: str) -> None:
    cat, truth, _, ok = filled
    assert cat.images_with_keyword(path) == brute_images(only(truth, ok), path, True)
    assert cat.images_with_keyword(path, descendants=False) == brute_images(
        only(truth, ok), path, False
    )
    assert cat.images_with_keyword(path, ok_only=False) == brute_images(truth, path, True)


def test_counts_include_the_hierarchys_nodes(filled) -> None:
    cat, everything, _, ok = filled
    truth = only(everything, ok)
    counts = {c.path: c for c in cat.keyword_counts()}
    nodes = {w.split("|")[0] for v in truth.values() for w in v} | {
        "|".join(w.split("|")[:k]) for v in truth.values() for w in v for k in (1, 2, 3)
    }
    assert set(counts) == {n for n in nodes if n}
    for path, c in counts.items():
        assert c == KeywordCount(
            path, len(brute_images(truth, path, True)), len(brute_images(truth, path, False))
        )
    assert counts["Animals|Pets"].parent == "Animals" and counts["Animals|Pets"].leaf == "Pets"
    stats = cat.fact_counts()
    assert stats["with_keywords"] == sum(1 for v in truth.values() if v)
    assert stats["keywords"] == len({w for v in truth.values() for w in v})
    assert cat.tagged_ids() == sorted(i for i, v in truth.items() if v)


def test_keywords_of_an_image_from_photo_and_sidecar(filled) -> None:
    cat, truth, _, ok = filled
    for i in ok:
        assert cat.keywords_of(i) == sorted(truth[i])
    assert cat.keywords_by_image(list(truth)) == {i: sorted(v) for i, v in truth.items() if v}


def test_class_names_of_the_librarys_keywords(filled) -> None:
    cat, _, _, _ = filled
    names = cat.keyword_class_names(class_name)
    assert names["Animals|Pets|Rex"] == "animals/pets/rex"  # shares its leaf with People|Rex
    assert names["People|Rex"] == "people/rex"
    assert names["Places|France|Paris"] == "paris"
    assert names["Animals"] == "animals" and names["Animal"] == "animal"


def test_a_sidecar_rewritten_replaces_only_its_own_keywords(filled) -> None:
    cat, truth, _, ok = filled
    i = next(i for i, v in truth.items() if v and i in ok)
    photo_words = set(cat.keywords_of(i)) - {
        p
        for (p,) in cat.db.execute(
            "SELECT k.path FROM image_keywords ik JOIN keywords k ON k.id = ik.keyword_id "
            "WHERE ik.image_id = ? AND ik.source = 'sidecar'",
            [i],
        )
    }
    cat.record_sidecars([(i, "2:2:new.xmp", ["Brand|New"], None)])
    assert cat.keywords_of(i) == sorted(photo_words | {"Brand|New"})
    cat.record_sidecars([(i, "", [], None)])  # the sidecar removed
    assert cat.keywords_of(i) == sorted(photo_words)
    assert cat.images_with_keyword("Brand") == []
    assert "Brand|New" not in {c.path for c in cat.keyword_counts()}
    assert cat.db.execute("SELECT count(*) FROM keywords WHERE path = 'Brand|New'").fetchone() == (
        0,
    )  # pruned


def test_deleted_images_take_their_keywords(filled) -> None:
    cat, _, _, _ = filled
    holders = cat.images_with_keyword("Holiday", ok_only=False)
    assert holders
    cat.delete_images(holders)
    assert cat.images_with_keyword("Holiday", ok_only=False) == []
    assert "Holiday" not in {c.path for c in cat.keyword_counts()}
    left = cat.db.execute(
        "SELECT count(*) FROM image_keywords WHERE image_id NOT IN (SELECT id FROM images)"
    ).fetchone()[0]
    assert left == 0


def test_notes_of_unreadable_sidecars(filled) -> None:
    cat, _, paths, _ = filled
    i = next(iter(paths))
    cat.record_sidecars([(i, "3:3:x.xmp", [], "sidecar not valid XML (syntax error)")])
    assert cat.sidecar_notes() == [(paths[i], "sidecar not valid XML (syntax error)")]
    cat.record_sidecars([(i, "4:4:x.xmp", ["Fixed"], None)])
    assert cat.sidecar_notes() == []


def test_folder_counts(filled, tmp_path: Path) -> None:
    cat, _, paths, ok = filled
    root = tmp_path / "photos"
    got = cat.folder_counts(str(root))
    own = {f: sum(1 for i in ok if Path(paths[i]).parent == root / f) for f in ("a/b", "a/b2")}
    assert got[0] == FolderCount("", len(ok), 0)
    by = {f.folder: f for f in got}
    assert set(by) == {"", "a", "a/b", "a/b2", "c"}
    assert by["a/b"] == FolderCount("a/b", own["a/b"], own["a/b"])
    assert by["a"].photos == by["a"].own + own["a/b"] + own["a/b2"]
    assert cat.folder_counts(str(root / "a" / "b")) == [FolderCount("", own["a/b"], own["a/b"])]


def test_a_catalog_of_the_previous_schema_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    db["meta"].create({"key": str, "value": str}, pk="key")
    for step in MIGRATIONS[: SCHEMA_VERSION - 1]:
        step(db)
    db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION - 1)})
    db["images"].insert(
        {"path": b"/p/x.jpg", "size": 3, "mtime_ns": 4, "status": "ok", "date_source": "exif"}
    )
    db.conn.commit()
    db.conn.close()
    cat = Catalog(path)
    assert cat.get_meta("schema_version") == SCHEMA_VERSION
    row = cat.image_by_path("/p/x.jpg")
    # its facts were read, its embedded keywords not yet: the next index reads its header
    assert cat.missing_facts_under("/p") == [(row.id, "/p/x.jpg")]
    cat.record_facts([(row.id, PhotoFacts(1, 1, date_source="exif", keywords=("A|B",)))])
    assert cat.missing_facts_under("/p") == [] and cat.keywords_of(row.id) == ["A|B"]


def test_the_photos_filed_under_any_of_several_keywords_in_one_query(filled) -> None:
    """``filed_under_any`` (a filed class's counter-examples: its siblings' photos) is the
    union of each keyword's ok photos, below each node too (``Animal`` is no node of
    ``Animals``), as brute force over the rows written finds it."""
    cat, truth, _, ok = filled
    for keys in (
        ["Animals", "Holiday"],
        ["Animals|Pets", "Animal", "Places|France|Paris"],
        ["People|Rex"],
        ["Nothing|Here"],
        [],
    ):
        want = sorted(
            i for i in ok if any(w == k or w.startswith(k + "|") for w in truth[i] for k in keys)
        )
        got = cat.filed_under_any("keyword", keys)
        assert got.tolist() == want, keys
        union = [cat.source_ids("keyword", k) for k in keys]
        assert got.tolist() == sorted(set(np.concatenate(union).tolist()) if union else set())
