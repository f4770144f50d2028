"""The filed photos read once for a whole filing (``finder.store.filing.FiledDraw``) draw each
class's examples and counter-examples exactly as the catalog's ``filed_ids`` does, class by
class: keywords with a hierarchy (a node and what is below it are related, not siblings),
folders and sub-folders, photos pending or failed, the person's marks, samples cut at
``MAX_FILED`` and ``MAX_COUNTER_EXAMPLES``, classes with few siblings. A real SQLite file."""

from __future__ import annotations

import os

import numpy as np
import pytest

from finder.filing import _related
from finder.ingest.crawl import FileFact
from finder.ingest.facts import PhotoFacts
from finder.ingest.keywords import SEP
from finder.store.catalog import Catalog
from finder.store.filing import (
    FOLDER,
    KEYWORD,
    MAX_COUNTER_EXAMPLES,
    MAX_FILED,
    FilingRecord,
    folder_key,
)

VOCABULARY = [
    "Animals|Pets|Rex",
    "Animals|Pets|Tom",
    "Animals|Birds",
    "Animal",  # a prefix of "Animals" as text, not a node of it
    "People|Rex",
    "Places|France|Paris",
    "Places|Italy",
    "Holiday",
    "Rare",  # on a few photos
]
FOLDERS = ["a", "a/b", "a/b2", "a/b/c", "c", "d", "e", "ab"]  # "ab": not below "a"


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, str, list[int]]:
    """9,000 images in ``FOLDERS`` (so that ``Animals`` holds more than ``MAX_FILED`` and a
    class's siblings more than ``MAX_COUNTER_EXAMPLES``), each with up to three keywords of
    ``VOCABULARY`` from the photo and its sidecar; every tenth pending, every seventh failed."""
    tmp = tmp_path_factory.mktemp("draw")
    cat = Catalog(tmp / "c.db")
    rng = np.random.default_rng(3)
    root = str(tmp / "photos")
    n = 9000
    paths = [os.path.join(root, FOLDERS[k % len(FOLDERS)], f"p{k}.jpg") for k in range(n)]
    ids = cat.insert_pending([FileFact(p, 1, 1) for p in paths])
    weights = np.asarray([8, 8, 4, 2, 2, 2, 2, 3, 0.05])
    embedded, sidecars = [], []
    for i in ids:
        count = int(rng.integers(1, 4))
        words = sorted(rng.choice(VOCABULARY, size=count, replace=False, p=weights / weights.sum()))
        split = int(rng.integers(0, len(words) + 1))
        embedded.append((i, PhotoFacts(10, 10, keywords=tuple(words[:split]))))
        sidecars.append((i, f"1:1:p{i}.jpg.xmp", words[split:], None))
    ok = [i for i in ids if i % 10 and i % 7]
    failed = [(i, "bad") for i in ids if not i % 7]
    cat.record_results([(i, None) for i in ok], failed, [f for f in embedded if f[0] in ok])
    cat.record_sidecars(sidecars)
    yield cat, root, ok
    cat.close()


def keyword_keys() -> list[str]:
    """Every keyword of ``VOCABULARY`` and every node above one."""
    nodes = {SEP.join(w.split(SEP)[:k]) for w in VOCABULARY for k in range(1, w.count(SEP) + 2)}
    return sorted(nodes)


def records(source: str, keys: list[str]) -> list[FilingRecord]:
    """A class of each key, its siblings every key not above or below it (as a filing's)."""
    out = []
    for key in keys:
        siblings = sorted(k for k in keys if k != key and not _related(source, k, key))
        out.append(FilingRecord(key, source, key, tuple(siblings)))
    return out


def marks(ok: list[int], rng: np.random.Generator) -> list[dict[int, int]]:
    picked = rng.choice(ok, size=400, replace=False)
    return [{}, {int(i): int(k % 2) for k, i in enumerate(picked)}]


@pytest.mark.parametrize("source", [KEYWORD, FOLDER])
def test_the_draw_gives_every_class_what_the_catalog_gives(filled, source: str) -> None:
    cat, root, ok = filled
    if source == KEYWORD:
        keys = keyword_keys()
    else:
        keys = [folder_key(root, f) for f in FOLDERS]
    draw = cat.filed_draw(source, keys)
    rng = np.random.default_rng(0)
    few = FilingRecord("few", source, keys[0], (keys[-1],))  # one sibling: a long walk
    every = [*records(source, keys), few]
    sizes = {"cut_own": 0, "cut_counter": 0, "walked_far": 0}
    for record in every:
        assert draw.covers(record)
        assert np.array_equal(draw.ids(record.key), cat.source_ids(source, record.key))
        for marked in marks(ok, rng):
            for seed in (0, 5):
                want = cat.filed_ids(record, marked, seed)
                got = draw.filed_ids(record, marked, seed)
                for w, g in zip(want, got, strict=True):
                    assert g.dtype == np.int64 and np.array_equal(w, g), (record.key, seed)
                own = len(cat.source_ids(source, record.key))
                sizes["cut_own"] += own > MAX_FILED
                sizes["cut_counter"] += len(want[1]) == MAX_COUNTER_EXAMPLES
                sizes["walked_far"] += 0 < len(want[1]) < MAX_COUNTER_EXAMPLES
    if source == KEYWORD:  # the cases the library was made to hold were met
        assert sizes["cut_own"] and sizes["cut_counter"] and sizes["walked_far"]
    else:
        assert sizes["cut_counter"] and sizes["walked_far"]


def test_a_class_whose_keys_were_not_read_is_not_covered(filled) -> None:
    cat, root, _ = filled
    draw = cat.filed_draw(KEYWORD, ["Animals|Birds", "Holiday"])
    assert draw.covers(FilingRecord("birds", KEYWORD, "Animals|Birds", ("Holiday",)))
    assert not draw.covers(FilingRecord("birds", KEYWORD, "Animals|Birds", ("Rare",)))
    assert not draw.covers(FilingRecord("birds", FOLDER, "Animals|Birds", ("Holiday",)))
    assert not draw.covers(FilingRecord("rare", KEYWORD, "Rare", ("Holiday",)))
    empty = cat.filed_draw(KEYWORD, [])
    assert not empty.covers(FilingRecord("rare", KEYWORD, "Rare", ()))
    nothing = cat.filed_draw(KEYWORD, ["Nowhere"])
    got = nothing.filed_ids(FilingRecord("n", KEYWORD, "Nowhere", ()), {}, 0)
    want = cat.filed_ids(FilingRecord("n", KEYWORD, "Nowhere", ()), {}, 0)
    assert all(len(w) == len(g) == 0 for w, g in zip(want, got, strict=True))


def test_a_catalog_with_no_keyword_draws_nothing(tmp_path) -> None:
    cat = Catalog(tmp_path / "c.db")
    record = FilingRecord("a", KEYWORD, "A", ("B",))
    got = cat.filed_draw(KEYWORD, ["A", "B"]).filed_ids(record, {1: 1}, 0)
    assert [len(g) for g in got] == [0, 0] and all(g.dtype == np.int64 for g in got)
    assert [len(w) for w in cat.filed_ids(record, {1: 1}, 0)] == [0, 0]
    cat.close()
