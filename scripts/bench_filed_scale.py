"""What importing a large filed library costs (issue 25's scale item: 2,000 keywords over
200,000 tagged photos "in minutes"; a refresh after 50 keywords changed retrains only those).

Two measures, CPU seconds (what the run costs whatever else shares the cores) and wall-clock:

1. **One head by its sizes**: ``finder.learn.filed.train_filed_head`` as a filed class calls it
   (``FILED_HEAD``, the library's metric, a background of 2,000, 2,000 fresh photos) for a
   keyword on 20, 100 (200,000 photos / 2,000 keywords), 1,000 and 5,000 (``MAX_FILED``)
   photos, each with 2,000 counter-examples (``MAX_COUNTER_EXAMPLES``) from its siblings,
   drawn from a background pool with one BLAS thread as ``learn_from_keywords`` trains them: the
   first class of a filing (the pool grown by its counter-examples) and the next one. With
   ``--library`` (``bench_filed.py --keep``'s, whose tree hard-links ../shared): a real class of
   its photos (the first with 100 photos or more, labelled by the file each is a link of) and
   real counter-examples; else unit vectors of 1,024 values drawn around 200 centres (which
   converge faster: they understate the cost).
2. **The product path** (``--library DIR``: an indexed library holding keyword classes, e.g.
   the one ``bench_filed.py --keep`` leaves): copied to a temporary folder, every keyword class
   trained again (``Library.learn_from_keywords`` with another seed: every digest changes), then
   refreshed with nothing changed (no class trained: the digests only).
3. **The product path at scale** (``--keywords K``): a library built directly (as
   ``bench_serve.py`` builds one: symbolic links to real photos, synthetic vectors in clusters
   of 100) of ``K`` x 100 photos, each cluster tagged with its own keyword (``Tags|kN``, as a
   sidecar would give it), imported with ``Library.learn_from_keywords`` (K classes of 100
   photos, each against 2,000 of its siblings' photos), then ``--changed`` keywords changed (a
   photo of each untagged) and refreshed: the whole import's CPU and wall-clock time, per
   class, what it projects to for 2,000 keywords, and what the refresh retrained
   (``refresh_trained``, of which ``refresh_trained_not_changed`` are classes of keywords not
   changed, against ``keywords_changed``), beside what retraining on any changed id of a
   class's examples or counter-examples would have (``refresh_trained_if_exact``: the rule
   before the counter-examples' drift, ``finder.filing.MAX_DRIFT``).

The projection: 2,000 classes x the CPU seconds of a class, on one core (a refresh trains the
changed classes only: 50 x that); with ``--keywords``, also the wall-clock time of the import
per class on this machine's cores x 2,000.

    python scripts/bench_filed_scale.py [--library DIR] [--sizes 20 100 1000 5000]
        [--keywords 200 --changed 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.filed import train_filed_head  # noqa: E402
from finder.learn.metric import whitener  # noqa: E402
from finder.learn.train import BACKGROUND_SIZE  # noqa: E402
from finder.library import Library  # noqa: E402
from finder.store.filing import MAX_COUNTER_EXAMPLES, MAX_FILED  # noqa: E402
from finder.teach_inputs import FILED_HEAD  # noqa: E402

KEYWORDS, PHOTOS, CHANGED = 2000, 200_000, 50


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def synthetic(dim: int = 1024, seed: int = 0):
    """Unit vectors drawn around 200 centres: ``draw(n, centre)`` (any centre when None)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dim)).astype(np.float32)

    def draw(n: int, centre: int | None = None) -> np.ndarray:
        if centre is None or centre < 0:  # any centre (the siblings: any but the class's)
            c = rng.integers(1 if centre else 0, len(centres), n)
        else:
            c = np.full(n, centre)
        x = np.maximum(centres[c] + 2.5 * rng.normal(size=(n, dim)).astype(np.float32), 0)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw, whitener(draw(8000))


def real(library: Path, seed: int = 0):
    """The library's own vectors, each photo labelled by the folder of the file in
    ../shared/tf_flowers or ../shared/photos it is a hard link of (``bench_filed.py``'s tree):
    ``draw(n, label)`` (any photo when None)."""
    labels: dict[tuple[int, int], str] = {}
    for base in (ROOT.parent / "shared" / "tf_flowers", ROOT.parent / "shared" / "photos"):
        for f in base.rglob("*"):
            if f.is_file():
                st = f.stat()
                labels[(st.st_dev, st.st_ino)] = f.parent.name
    lib = Library(library)
    store = lib.folder.open_vectors()
    ids = np.sort(store.ids())
    paths = lib.folder.open_catalog().paths_for(ids.tolist())
    got = []
    for i in ids:
        try:
            st = Path(paths[int(i)]).stat()
        except OSError:
            got.append("")
            continue
        got.append(labels.get((st.st_dev, st.st_ino), ""))
    names = np.asarray(got)
    classes = [c for c in np.unique(names) if c and (names == c).sum() >= 100]
    rng = np.random.default_rng(seed)
    X = store.get(ids)
    metric = lib.metric()
    lib.close()

    def draw(n: int, centre: int | None = None) -> np.ndarray:
        if centre is None:
            pool = np.arange(len(ids))
        elif centre < 0:  # the siblings': photos of the other classes
            pool = np.flatnonzero((names != classes[0]) & (names != ""))
        else:
            pool = np.flatnonzero(names == classes[centre])
        return X[rng.choice(pool, size=min(n, len(pool)), replace=False)]

    return draw, metric


def pool_head(pool, L: np.ndarray, own: np.ndarray, counter: np.ndarray, metric):
    """One filed class's head from ``pool`` (over the rows ``L``), as ``Teaching`` trains it."""
    exclude = np.concatenate([own, counter])
    try:
        _, _, B, F, prepared = pool.draw(exclude, counter)
    except TypeError:  # a pool that takes no counter-examples (the code before this pass)
        _, _, B, F, prepared = pool.draw(exclude)
    return train_filed_head(
        positives=L[own],
        negatives=L[counter],
        background=B,
        seed=0,
        metric=metric,
        fresh=F,
        config=FILED_HEAD,
        prepared=prepared,
    )


def heads_by_size(sizes: list[int], draw, metric) -> list[dict]:
    """Each size's head as ``learn_from_keywords`` trains it: from the library's pool (its
    background's rows in the metric and their graph computed once; the counter-examples too,
    where the pool's code takes them), one BLAS thread (``finder.training.train_all``'s), the
    first class of a filing (the pool grown by its counter-examples) and the next one (another
    class against the same counter-examples, as a filing's classes mostly are)."""
    from threadpoolctl import threadpool_limits

    from finder.learn.background import Pool

    out = []
    for p in sizes:
        P, Q = draw(min(p, MAX_FILED), 0), draw(min(p, MAX_FILED), 0)
        N = draw(MAX_COUNTER_EXAMPLES, -1)
        L = np.concatenate([P, Q, N, draw(2 * BACKGROUND_SIZE + 500)])
        at = np.cumsum([0, len(P), len(Q), len(N)])
        counter = np.arange(at[2], at[3])
        pool = Pool(len(L), 0, L.__getitem__, metric, size=BACKGROUND_SIZE)
        row: dict = {"filed": len(P), "counter": len(N)}
        for key, own in (("first", np.arange(at[0], at[1])), ("next", np.arange(at[1], at[2]))):
            with threadpool_limits(limits=1, user_api="blas"):
                _, wall, cpu = timed(partial(pool_head, pool, L, own, counter, metric))
            row[f"{key}_cpu_s"], row[f"{key}_wall_s"] = round(cpu, 3), round(wall, 2)
        row["cpu_s"] = row["next_cpu_s"]
        out.append(row)
        print(
            f"| {len(P)} | {len(N)} | {row['first_cpu_s']:.3f} | {row['next_cpu_s']:.3f} | "
            f"{row['next_wall_s']:.2f} | {load()} |",
            flush=True,
        )
    return out


def product(library: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="finder-bench-filed-scale-"))
    try:
        copy = work / "library"
        shutil.copytree(library, copy, ignore=shutil.ignore_patterns("thumbs", "*.lock"))
        with Library(copy) as lib:
            n = len(lib.folder.open_catalog().filings())
            report, wall, cpu = timed(lambda: lib.learn_from_keywords(min_photos=1, seed=1))
            trained = len(report.learned) + len(report.refreshed)
            again, wall2, cpu2 = timed(lambda: lib.learn_from_keywords(min_photos=1, seed=1))
        got = {
            "classes": n,
            "trained": trained,
            "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1),
            "cpu_s_per_class": round(cpu / max(trained, 1), 2),
            "refresh_unchanged": len(again.unchanged),
            "refresh_trained": len(again.learned) + len(again.refreshed),
            "refresh_cpu_s": round(cpu2, 2),
            "refresh_wall_s": round(wall2, 1),
            "load": load(),
        }
        print(json.dumps(got), flush=True)
        return got
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tagged_library(work: Path, keywords: int) -> Path:
    """A library of ``keywords`` x 100 photos, each cluster of 100 tagged ``Tags|kN``."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_serve import build, source_photos

    n = keywords * 100
    directory = work / f"tagged-{n}"
    build(directory, n, 1024, source_photos(work), [])
    with Library(directory) as lib:
        catalog = lib.folder.open_catalog_for_writing()
        ids = np.sort(np.asarray(catalog.ok_ids(), dtype=np.int64))
        which = (ids - ids[0]) % keywords  # build's cluster of an image: its rank mod clusters
        catalog.record_sidecars(
            [(int(i), "bench", [f"Tags|k{int(c)}"], None) for i, c in zip(ids, which, strict=True)]
        )
    return directory


def filed_samples(lib: Library) -> dict[str, tuple[bytes, bytes]]:
    """Each filed class's examples and counter-examples as a training would draw them now
    (seed 0, no marks), by name: what the exact rule (any id different, retrain) compares."""
    catalog = lib.folder.open_catalog()
    filings = catalog.filings()
    keys = {k for f in filings for k in (f.key, *f.siblings)}
    drawn = catalog.filed_draw("keyword", keys)  # the ids catalog.filed_ids gives, read once
    out = {}
    for f in filings:
        pos, neg = drawn.filed_ids(f, {}, 0)
        out[f.name] = (pos.tobytes(), neg.tobytes())
    return out


def product_at_scale(keywords: int, changed: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="finder-bench-filed-scale-"))
    try:
        t = time.perf_counter()
        directory = tagged_library(work, keywords)
        built = time.perf_counter() - t
        with Library(directory) as lib:
            lib.metric()  # the library's metric, as an index run leaves it
            report, wall, cpu = timed(lambda: lib.learn_from_keywords(min_photos=10))
            trained = len(report.learned) + len(report.refreshed)
            catalog = lib.folder.open_catalog_for_writing()
            ids = np.sort(np.asarray(catalog.ok_ids(), dtype=np.int64))
            drawn = filed_samples(lib)  # what each class was trained from and against
            catalog.record_sidecars([(int(ids[k]), "changed", [], None) for k in range(changed)])
            # the classes of the keywords changed (a photo of each untagged)
            own = {f"k{int(ids[k] - ids[0]) % keywords}" for k in range(changed)}
            exact = sum(1 for n, d in filed_samples(lib).items() if d != drawn.get(n))
            again, wall2, cpu2 = timed(lambda: lib.learn_from_keywords(min_photos=10))
        got = {
            "photos": keywords * 100,
            "keywords": keywords,
            "built_s": round(built, 1),
            "trained": trained,
            "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1),
            "cpu_s_per_class": round(cpu / max(trained, 1), 3),
            "wall_s_per_class": round(wall / max(trained, 1), 3),
            "changed": changed,
            "keywords_changed": len(own),
            "refresh_trained": len(again.learned) + len(again.refreshed),
            "refresh_trained_not_changed": len(set(again.refreshed) - own),
            "refresh_unchanged": len(again.unchanged),
            "refresh_trained_if_exact": exact,
            "refresh_cpu_s": round(cpu2, 2),
            "refresh_wall_s": round(wall2, 1),
            "projected_import_wall_min": round(KEYWORDS * wall / max(trained, 1) / 60, 1),
            "projected_import_cpu_min": round(KEYWORDS * cpu / max(trained, 1) / 60, 1),
            "cores": os.cpu_count(),
            "load": load(),
        }
        print(json.dumps(got), flush=True)
        return got
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, help="an indexed library with keyword classes")
    ap.add_argument("--sizes", nargs="*", type=int, default=[20, 100, 1000, 5000])
    ap.add_argument("--keywords", type=int, help="the product path on a built library of these")
    ap.add_argument("--changed", type=int, default=5, help="keywords changed before the refresh")
    args = ap.parse_args()
    print(
        "| filed photos | counter-examples | first class CPU s | next class CPU s | wall s | load |"
    )
    print("|---|---|---|---|---|---|")
    draw, metric = real(args.library) if args.library is not None else synthetic()
    sizes = heads_by_size(args.sizes, draw, metric)
    typical = min(sizes, key=lambda s: abs(s["filed"] - PHOTOS // KEYWORDS))
    report: dict = {"heads": sizes, "load": load()}
    if args.library is not None:
        report["product"] = product(args.library)
    if args.keywords:
        report["product_at_scale"] = product_at_scale(args.keywords, args.changed)
    per = typical["cpu_s"]
    report["projection"] = {
        "keywords": KEYWORDS,
        "photos_per_keyword": typical["filed"],
        "import_cpu_min": round(KEYWORDS * per / 60, 1),
        "refresh_after_50_cpu_min": round(CHANGED * per / 60, 1),
    }
    print(
        f"\n{KEYWORDS} keywords of ~{typical['filed']} photos: {KEYWORDS * per / 60:.0f} min of "
        f"CPU (one core) to import; {CHANGED} changed: {CHANGED * per / 60:.1f} min"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
