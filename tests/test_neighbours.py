"""find's answer near the cut re-ranked by the library's neighbours (finder.neighbours over the
kept graph, finder.store.graph): a photo just below the cut among ✓ photos is found, one just
above it among ✗ photos is not; the answer is what the eval's in-memory re-rank gives; a
missing or damaged graph leaves find answering (the head's own answer), check reports it and
repair computes it again.

A library of synthetic vectors (real SQLite catalog and raw vector store, real training), as
scripts/bench_serve.py builds one: clusters of photos, a class learned from one of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from finder.ingest.crawl import FileFact
from finder.learn.head import sigmoid
from finder.learn.smooth import smooth_rows
from finder.library import Library
from finder.store import graph as graphs
from finder.store.catalog import Catalog
from finder.store.vectors import VectorStore

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def add_photos(lib: Library, directory: Path, vectors: np.ndarray, first: int) -> list[int]:
    """Photos with these vectors put in the library as an index run would, then settled."""
    facts = []
    for k in range(len(vectors)):
        path = directory / "photos" / f"{first + k}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 not decoded")
        st = path.stat()
        facts.append(FileFact(str(path), st.st_size, st.st_mtime_ns))
    catalog = lib.folder.open_catalog_for_writing()
    ids = catalog.insert_pending(facts)
    store = lib.folder.open_vectors_for_writing()
    store.add(np.asarray(ids, dtype=np.int64), vectors)
    store.commit()
    catalog.record_results([(int(i), None) for i in ids], [])
    lib.folder.settle(store)
    return list(ids)


def new_library(directory: Path, vectors: np.ndarray) -> list[int]:
    directory.mkdir(parents=True)
    catalog = Catalog(directory / "catalog.db")
    info = {"name": "synthetic", "layer": None, "dim": DIM, "weights": "none"}
    info |= {"fingerprint": "test", "input_size": [224, 224], "views": 1}
    catalog.set_meta("backbone", info)
    VectorStore(directory / "vectors", DIM).close()
    catalog.close()
    with Library(directory) as lib:
        return add_photos(lib, directory, vectors, 0)


def clustered(
    directory: Path, clusters: int, size: int, spread: float, yes: int, no: int, *, near: float
) -> tuple[Path, list[int], np.ndarray]:
    """``clusters`` clusters of ``size`` photos (noise ``spread``; cluster 1 moved towards
    cluster 0 by ``near``, 0: not moved); class "c" learned from ``yes`` photos of cluster 0
    (✓) and ``no`` of cluster 1 (✗)."""
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((clusters, DIM)))
    if near:
        centres[1] = unit(centres[0] + near * centres[1])
    which = np.repeat(np.arange(clusters), size)
    x = unit(centres[which] + spread * rng.standard_normal((len(which), DIM)))
    ids = new_library(directory, x)
    with Library(directory) as lib:
        ticked = [ids[i] for i in np.flatnonzero(which == 0)[:yes]]
        crossed = [ids[i] for i in np.flatnonzero(which == 1)[:no]]
        lib.learn_ids("c", ticked, crossed)
    return directory, ids, centres


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], np.ndarray]:
    """30 clusters of 15 photos; class "c" learned from cluster 0 (✓ 12 of it) against
    cluster 1 (✗ 12 of it)."""
    directory = tmp_path_factory.mktemp("neighbours") / "library"
    return clustered(directory, 30, 15, 0.12, 12, 12, near=0.0)


@pytest.fixture(scope="module")
def built_fuzzy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], np.ndarray]:
    """20 clusters of 20 photos that spread into each other, cluster 1 next to cluster 0;
    class "c" learned from 5 photos of cluster 0 (✓) and 3 of cluster 1 (✗): a band of
    photos near its cut."""
    directory = tmp_path_factory.mktemp("fuzzy") / "library"
    return clustered(directory, 20, 20, 0.25, 5, 3, near=0.8)


@pytest.fixture
def fuzzy(built_fuzzy, tmp_path: Path) -> tuple[Path, list[int], np.ndarray]:
    directory, ids, centres = built_fuzzy
    shutil.copytree(directory, tmp_path / "library", symlinks=True)
    return tmp_path / "library", ids, centres


@pytest.fixture
def clusters(built, tmp_path: Path) -> tuple[Path, list[int], np.ndarray]:
    """A copy of the built library for one test."""
    directory, ids, centres = built
    shutil.copytree(directory, tmp_path / "library", symlinks=True)
    return tmp_path / "library", ids, centres


def head_of(lib: Library):
    return lib.teaching.head("c")


def placed(head, base: np.ndarray, target: float) -> np.ndarray:
    """A unit vector from ``base`` moved along the head's weights until its logit is
    ``target``."""
    w = head.w / np.linalg.norm(head.w)
    lo, hi = -3.0, 3.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(head.logits(unit(base + mid * w)[None])[0]) < target:
            lo = mid
        else:
            hi = mid
    return unit(base + lo * w)


def mark_without_training(lib: Library, name: str, ids: list[int], label: int) -> None:
    """Marks of class ``name`` added to its examples, its head left as it is (as if the head
    had been trained before them): the re-rank reads marks by id, whatever trained the head."""
    catalog = lib.folder.open_catalog_for_writing()
    record = catalog.get_class(name)
    rows = catalog.example_rows(name)
    paths = catalog.paths_for(ids)
    vectors = lib.folder.open_vectors().get(np.asarray(ids))
    rows += [(paths[i], label, v.tobytes(), 0.0, "top") for i, v in zip(ids, vectors, strict=True)]
    catalog.put_class(record, rows)


def test_a_photo_below_the_cut_among_yes_is_found_one_above_among_no_is_not(clusters) -> None:
    directory, ids, _ = clusters
    rng = np.random.default_rng(5)
    with Library(directory) as lib:
        head = head_of(lib)
        scale = head.params.get("softened", [1.0])[0]
        cut = head.logit_threshold
        below = placed(head, unit(rng.standard_normal(DIM)), cut - 0.3 * scale)
        above = placed(head, unit(rng.standard_normal(DIM)), cut + 0.3 * scale)
        twins = [unit(v + 0.02 * rng.standard_normal((10, DIM))) for v in (below, above)]
        new = add_photos(lib, directory, np.concatenate([[below, above], *twins]), len(ids))
        mark_without_training(lib, "c", new[2:12], 1)  # around the one below: all ✓
        mark_without_training(lib, "c", new[12:22], 0)  # around the one above: all ✗
        assert head_of(lib).to_dict() == head.to_dict()
        # the settle brought the graph up to date: their neighbours are those marks
        g = graphs.load(directory)
        assert g is not None and g.fresh(lib.folder.open_vectors())
        marks = {m.id: m.label for m in lib.marks("c")}
        nbr, _ = g.neighbours(np.asarray(new[:2]), 10)
        assert [marks.get(int(i)) for i in nbr[0]] == [1] * 10
        assert [marks.get(int(i)) for i in nbr[1]] == [0] * 10
        z = head.logits(lib.folder.open_vectors().get(np.asarray(new[:2])))
        assert z[0] < cut <= z[1]  # the head alone: the first out, the second in
        found = {m.id: m.score for m in lib.find("c")}
        assert new[0] in found and new[1] not in found
        assert found[new[0]] >= head.threshold
        # the page's grid (a top K) ranks by the same re-ranked logits
        top = [m.id for m in lib.find("c", top=len(found) + 5)]
        assert new[0] in top[: len(found)] and new[1] not in top[: len(found)]
        # the photo's page and the live updates say what find says
        scores = {n: p for n, p, _ in lib.class_scores(new[0])}
        assert scores["c"] == pytest.approx(found[new[0]])
        assert new[0] in lib.teaching.hits(new[:2], lib.answers.neighbours.rerank)["c"]
        assert new[1] in lib.teaching.hits(new[:2])["c"]  # the head's own
        # an explicit --min-prob is the head's own
        by_prob = {m.id for m in lib.find("c", min_prob=head.threshold)}
        assert new[1] in by_prob and new[0] not in by_prob


def test_find_answers_what_the_eval_re_rank_gives(fuzzy) -> None:
    directory, _, _ = fuzzy
    with Library(directory) as lib:
        head = head_of(lib)
        store = lib.folder.open_vectors()
        ids = np.sort(store.ids())
        X = store.get(ids)
        z = head.logits(X).astype(np.float64)
        pos = {int(i): p for p, i in enumerate(ids)}
        marks = {pos[m.id]: m.label for m in lib.marks("c")}
        rows = np.arange(len(ids))  # every photo, marked ones too, as the eval re-ranks
        zs = smooth_rows(
            z, head.logit_threshold, X, rows, marks, softened=head.params.get("softened")
        )
        want = set(ids[rows[zs >= head.logit_threshold]].tolist())
        got = {m.id for m in lib.find("c")}
        assert got == want
        moved = rows[(zs >= head.logit_threshold) != (z[rows] >= head.logit_threshold)]
        assert len(moved)  # the re-rank changed the answer here
        # the scores are the re-ranked probabilities
        by_id = {m.id: m.score for m in lib.find("c")}
        for p, s in zip(rows.tolist(), zs.tolist(), strict=True):
            if int(ids[p]) in by_id:
                assert by_id[int(ids[p])] == pytest.approx(float(sigmoid(np.asarray([s]))[0]))


def test_a_missing_or_damaged_graph_leaves_find_answering_check_says_so_repair_mends(
    fuzzy,
) -> None:
    directory, _, _ = fuzzy
    with Library(directory) as lib:
        smoothed = {m.id for m in lib.find("c")}
        head = head_of(lib)
        store = lib.folder.open_vectors()
        ids, _ = store.search_linear(head.w, head.b, min_score=head.logit_threshold)
        own = set(ids.tolist())
    assert own != smoothed  # (the re-rank matters on this library)
    p = graphs.path(directory)
    for damage in ("missing", "damaged"):
        if damage == "missing":
            p.unlink()
        else:
            p.write_bytes(b"PK\x03\x04 not a graph")
        with Library(directory) as lib:
            assert {m.id for m in lib.find("c")} == own  # the head's own answer
            assert any("neighbour graph" in m and "finder repair" in m for m in lib.messages)
            problems = [str(x) for x in lib.check()]
            assert any(x.startswith("graph:") and damage in x for x in problems), problems
        with Library(directory) as lib:
            lib.repair()
        with Library(directory) as lib:
            assert not [x for x in lib.check() if str(x).startswith("graph:")]
            assert {m.id for m in lib.find("c")} == smoothed


def test_the_neighbours_logits_read_from_a_lower_search_are_the_same(fuzzy) -> None:
    """A strip's search (6 logits below the cut) held by the store lends the re-rank the
    logits of the band's neighbours: the same answer as scoring them."""
    directory, _, _ = fuzzy
    with Library(directory) as lib:
        alone = [(m.id, m.score) for m in lib.find("c")]
        head = head_of(lib)
        store = lib.folder.open_vectors()
        store.search_linear(head.w, head.b, min_score=head.logit_threshold - 6.0)
        assert store.held_search(head.w, head.b) is not None
        assert [(m.id, m.score) for m in lib.find("c")] == alone
