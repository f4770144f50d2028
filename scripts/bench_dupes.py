"""How well `finder dupes` finds near-duplicates: precision and recall of the pairs it reports.

    python scripts/bench_dupes.py [--photos ../shared/photos] [--model FILE.tflite] [--keep DIR]
    python scripts/bench_dupes.py --margins [--index]   # --index: candidates from an IVF tier

Copies the real photos (flowers17: 17 species x 20, pets: 100 cats, 100 dogs) into a temporary
folder and makes near-duplicates of them beside the originals, one edit per photo in turn:

- resize: 55% of the sides (JPEG quality 90)
- reencode: JPEG quality 25 or 50, or WebP quality 40
- crop: 5% of the width and height cut off, from one side or evenly
- rotate: 2-3 degrees either way, the corners cut off as a straightening tool does
- brightness: x1.3 or x0.75

every fourth photo gets a second edit (a group of three), and every twentieth a byte-for-byte
copy. It indexes the folder with the shared TFLite MobileNet, runs ``Library.dupes()`` and
compares the pairs of files that share a group with the truth: two files are a true pair when
they come from the same original photo. Pairs of different photos of the same flower species
(or both cats, or both dogs) are false, and counted apart (``same_class_false``).

Last line: JSON with ``pairs`` (pairs found), ``true_pairs``, ``precision``, ``recall``,
``seconds`` (the dupes call alone) and ``index_seconds``. The bars: precision >= 0.98 and
recall >= 0.95.

**At scale** (``--scale N``): the candidate stage of ``finder dupes`` (pairs of vectors with
cosine similarity >= ``MIN_COSINE``, exact scores) on N synthetic 4096-d vectors (VGG16 fc1's
width) in a real ``VectorStore`` (float16 raw file, and the search tier the store picks for N:
PCA + IVF + 8-bit codes beyond 10,000), the way ``finder index`` leaves a library::

    python scripts/bench_dupes.py --scale 100000    # the index way and the exact way
    python scripts/bench_dupes.py --scale 1000000   # the index way alone; 8 GB of scratch disk

The exact way runs up to ``EXACT_UP_TO`` vectors unless ``--no-exact`` (``--exact`` forces it).
Memory stays bounded whatever N: vectors are generated and stored 16,384 at a time (float16 on
disk), the tier is built and filled chunk by chunk, the join holds one list's probers at a time
per core and the exact cosines ``RESCORE`` pairs at a time; the largest parts in memory are the
tier's 8-bit codes (N x 1,536 bytes) and the candidate pairs (16 bytes each). The peak resident
memory of the process is reported (``peak_rss_gb``, and after each stage).

The generator (:class:`Embeddings`) makes vectors shaped like a CNN layer after its ReLU, as
VGG16 fc1 is: a pre-activation ``h = mu + (w_c + z) A + sigma e`` is cut at zero and
unit-normalised. ``mu`` is a fixed per-unit offset (some units usually fire, most rarely: the
shared "this is a photo" direction); ``A`` maps 256 latent factors with a power-law spread
(factor j has weight j^-0.5) onto the 4096 units; ``w_c`` places the photo's cluster (an event,
a subject: N / 200 clusters) in the latent space and ``z`` its own variation; ``e`` is per-unit
noise, the part no low-rank model explains. The result is non-negative and sparse (58 % zeros),
clustered and anisotropic (a photo's nearest neighbour has median cosine ~0.75, unrelated
photos ~0.38; a 1534-direction PCA keeps ~95 % of the variance), close to what the shared
TFLite MobileNet gives on ../shared/photos (non-negative, median nearest neighbour 0.78,
unrelated 0.45, ~2 neighbours >= 0.8 a photo). Planted pairs: in every chunk of 16,384, 5 % of
the photos are edited copies of a random earlier photo (``h`` plus ``tau`` times fresh
variation, ``tau`` uniform in [0.1, 1.0]: cosine 0.80 to 0.998) and 5 % are burst shots of one
(``tau`` in [1.0, 1.5]: cosine 0.65 to 0.85, near the threshold, many just below it). Vectors
are generated and stored in chunks (never all in memory), float32, the per-unit noise (most of
the generator's work) drawn on a thread per core, cut and normalised in place.

It reports the index way's two steps apart (the join of the IVF lists on the codes, giving
candidates; the exact cosine of each candidate from the raw vectors), the exact way (every
pair, block by block) when asked, and the recall of the index way against the exact way's
pairs (and, always, against the planted pairs at or above the threshold). The pixel check
that follows in ``finder dupes`` is the same for both ways and not part of it (there are no
pixels). Wall-clock and CPU seconds both: the machine is shared. Last line: JSON with ``n``,
``candidate_recall`` (of the exact pairs; None without them), ``candidate_seconds`` (join +
exact cosines), ``exact_seconds`` (None without the exact way), ``peak_rss_gb`` and the
details. Bars: at 100,000 a recall >= 0.99 at <= 0.2 of the exact way's time; at 1,000,000 the
candidate stage under 15 minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

from finder.library import BackboneChoice, Library  # noqa: E402

SHARED = REPO.parent / "shared"
EDITS = ("resize", "reencode", "crop", "rotate", "brightness")
#: Photos of the shared set that are one picture saved twice (mean pixel difference 2 and 5 grey
#: levels, same size): their copies are true pairs too. Found by this benchmark, checked by eye.
SAME_PICTURE = {
    "flowers17/snowdrop/image_0100.jpg": "flowers17/snowdrop/image_0090.jpg",
    "flowers17/tigerlily/image_0498.jpg": "flowers17/tigerlily/image_0484.jpg",
}


def edit(im: Image.Image, kind: str, k: int) -> tuple[Image.Image, dict]:
    """The photo ``im`` edited by ``kind`` (variant ``k``), and how to save it."""
    w, h = im.size
    if kind == "resize":
        return im.resize((round(w * 0.55), round(h * 0.55)), Image.Resampling.LANCZOS), {}
    if kind == "reencode":
        return im, [{"quality": 25}, {"quality": 50}, {"format": "WEBP", "quality": 40}][k % 3]
    if kind == "crop":
        dx, dy = round(w * 0.05), round(h * 0.05)
        if k % 2:  # evenly
            return im.crop((dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2))), {}
        return im.crop((dx, dy, w, h) if k % 4 == 0 else (0, 0, w - dx, h - dy)), {}
    if kind == "rotate":
        angle = (2.0 + (k % 3) * 0.5) * (1 if k % 2 else -1)
        turned = im.rotate(angle, Image.Resampling.BICUBIC, expand=False)
        mx, my = round(0.04 * w + 0.5), round(0.04 * h + 0.5)  # beyond the empty corners
        return turned.crop((mx, my, w - mx, h - my)), {}
    if kind == "brightness":
        return ImageEnhance.Brightness(im).enhance(1.3 if k % 2 else 0.75), {}
    raise ValueError(kind)


def make_corpus(photos: Path, root: Path) -> dict[str, tuple[str, str]]:
    """Copy the photos under ``root`` and add their edited copies; returns for each file its
    (picture, class): the original photo it comes from, or the one it is the same picture as."""
    truth: dict[str, tuple[str, str]] = {}
    originals = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    for n, src in enumerate(originals):
        rel = src.relative_to(photos)
        label = str(rel.parent)
        picture = SAME_PICTURE.get(rel.as_posix(), rel.as_posix())
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.utime(dst, (1_500_000_000, 1_500_000_000))  # the originals are the oldest
        truth[str(dst)] = (picture, label)
        with Image.open(src) as im:
            im = im.convert("RGB")
            kinds = [EDITS[n % len(EDITS)]]
            if n % 4 == 0:
                kinds.append(EDITS[(n + 2) % len(EDITS)])
            for kind in kinds:
                out, how = edit(im, kind, n)
                fmt = how.pop("format", "JPEG")
                how.setdefault("quality", 90)
                ext = ".webp" if fmt == "WEBP" else ".jpg"
                path = root / "edited" / kind / f"{rel.parent.name}-{rel.stem}{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                out.save(path, fmt, **how)
                truth[str(path)] = (picture, label)
        if n % 20 == 0:
            copy = root / "copies" / f"{rel.parent.name}-{rel.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, copy)
            truth[str(copy)] = (picture, label)
    return truth


def pairs_of(groups: list) -> set[tuple[str, str]]:
    """Every pair of paths that share a group (identical copies join their near group)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for g in groups:
        first = g.files[0].path
        for f in g.files[1:]:
            a, b = find(first), find(f.path)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for x in parent:
        members.setdefault(find(x), []).append(x)
    return {
        tuple(sorted(p))
        for group in members.values()
        for p in itertools.combinations(sorted(group), 2)
    }


def dupes_through_index(lib: Library) -> list:
    """``finder dupes`` with its candidate pairs taken from the search index, as beyond 10,000
    photos, on this small library: the store opened with an IVF tier (PCA to 382 of the 1024
    dimensions, the share 1534 of 4096 keeps at scale; lists of about 10 vectors)."""
    from finder.act.dupes import find_dupes
    from finder.store.vectors import VectorStore

    store = VectorStore(
        lib.dir / "vectors", lib.folder.open_vectors().dim, flat_max=0, pca_dim=382, read_only=True
    )
    try:
        print(f"tier: {store.index_name()}", file=sys.stderr)
        return find_dupes(lib.folder.open_catalog(), store, exact_below=0)
    finally:
        store.close()


def candidate_margins(lib: Library, truth: dict[str, tuple[str, str]]) -> dict[str, float]:
    """The pixel correlation of every candidate pair (vectors at least ``MIN_COSINE`` alike):
    the lowest of the true pairs and the highest of the false ones, beside the threshold."""
    from finder.act import dupes

    rows = {r.id: r.path for r in lib.folder.open_catalog_for_writing().rows_under(os.sep)}
    pairs = dupes.candidate_pairs(lib.folder.open_vectors_and_repair(), sorted(rows))
    sigs = {i: dupes.signature(rows[i]) for i in sorted({i for p in pairs for i in p})}
    true_low, false_high = 1.0, -1.0
    for a, b in pairs:
        c = dupes.correlation(sigs[a], sigs[b])
        if truth[rows[a]][0] == truth[rows[b]][0]:
            true_low = min(true_low, c)
        else:
            false_high = max(false_high, c)
    return {
        "candidates": len(pairs),
        "lowest_true_correlation": round(true_low, 4),
        "highest_false_correlation": round(false_high, 4),
        "min_correlation": dupes.MIN_CORRELATION,
    }


# --- at scale: the candidate stage on synthetic vectors ---------------------------------------

DIM = 4096
CHUNK = 16384
#: Slices of a chunk's noise, each from its own generator (drawn on a thread per core).
NOISE_PARTS = 8
#: Up to this many vectors the exact way (every pair) runs unless --no-exact (at 100,000: ~5 min).
EXACT_UP_TO = 200_000


def peak_rss_gb() -> float:
    """The process's peak resident memory so far, GB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 2)


class Embeddings:
    """Synthetic CNN-like embeddings (see the module docstring): ``photos`` gives
    pre-activations, ``vectors`` cuts them at zero and unit-normalises them."""

    def __init__(self, n: int, seed: int = 0, factors: int = 256, per_cluster: int = 200) -> None:
        rng = np.random.default_rng(seed)
        spread = np.arange(1, factors + 1) ** -0.5
        spread /= np.sqrt((spread**2).sum())
        self.factors = factors
        self.a = (rng.standard_normal((factors, DIM)) * spread[:, None]).astype(np.float32)
        self.mu = (-0.3 + 0.7 * rng.standard_normal(DIM)).astype(np.float32)
        self.clusters = max(1, n // per_cluster)
        self.centres = rng.standard_normal((self.clusters, factors)).astype(np.float32) @ self.a
        self.sigma = np.float32(0.3)

    def variation(self, m: int, rng: np.random.Generator) -> np.ndarray:
        h = rng.standard_normal((m, self.factors), dtype=np.float32) @ self.a
        h += self.noise(m, rng)
        return h

    def noise(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """``sigma e``: (m, DIM) float32 normals, drawn on a thread per core (one generator
        each, spawned from ``rng``: the same numbers whatever the machine's cores)."""
        out = np.empty((m, DIM), dtype=np.float32)
        parts = np.array_split(np.arange(m), NOISE_PARTS)
        gens = rng.spawn(len(parts))

        def fill(k: int) -> None:
            rows = out[parts[k][0] : parts[k][-1] + 1] if len(parts[k]) else out[:0]
            gens[k].standard_normal(out=rows, dtype=np.float32)
            rows *= self.sigma

        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(fill, range(len(parts))))
        return out

    def photos(self, m: int, rng: np.random.Generator) -> np.ndarray:
        h = self.variation(m, rng)
        h += self.centres[rng.integers(0, self.clusters, m)]
        h += self.mu
        return h

    @staticmethod
    def vectors(h: np.ndarray) -> np.ndarray:
        """``h`` cut at zero and unit-normalised, in place (float32)."""
        x = np.maximum(h, 0, out=h)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        x /= np.maximum(norms, 1e-9)[:, None]
        return x


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(t: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clock()
    return round(wall - t[0], 1), round(cpu - t[1], 1)


def build_store(n: int, directory: Path, seed: int = 1):
    """A VectorStore of n synthetic vectors (ids 0..n-1) with planted copies and bursts, its
    index saved as ``finder index`` leaves it. Returns the store and the planted pairs
    (original, copy, kind: 0 an edited copy, 1 a burst shot)."""
    from finder.store.vectors import VectorStore

    gen = Embeddings(n)
    rng = np.random.default_rng(seed)
    shutil.rmtree(directory, ignore_errors=True)
    store = VectorStore(directory, DIM)
    keep = 4096  # earlier pre-activations kept (a uniform sample) to copy from
    pool_h = pool_ids = None
    planted = []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        h = gen.photos(m, rng)
        ids = np.arange(start, start + m, dtype=np.int64)
        if pool_h is not None:
            k = m // 10
            rows = rng.choice(m, size=k, replace=False)
            src = rng.integers(0, len(pool_h), k)
            burst = np.arange(k) % 2 == 1
            tau = np.where(burst, rng.uniform(1.0, 1.5, k), rng.uniform(0.1, 1.0, k))
            h[rows] = pool_h[src] + tau[:, None].astype(np.float32) * gen.variation(k, rng)
            planted.append(np.stack([pool_ids[src], ids[rows], burst.astype(np.int64)], 1))
        if pool_h is None:
            pool_h, pool_ids = h[:keep].copy(), ids[:keep].copy()
        else:  # keep a uniform sample of everything so far
            swap = rng.random(keep) < m / (start + m)
            take = rng.integers(0, m, int(swap.sum()))
            pool_h[swap], pool_ids[swap] = h[take], ids[take]
        store.add(ids, Embeddings.vectors(h))
        store.commit()
        if (start // CHUNK) % 8 == 0:
            print(f"  generated {start + m:,}/{n:,}", file=sys.stderr, flush=True)
    return store, np.concatenate(planted) if planted else np.zeros((0, 3), np.int64)


def shape_of(store, rng: np.random.Generator) -> dict:
    """What the vectors look like, from a sample: zeros, cosine to unrelated photos and to the
    nearest neighbour (among the sample), the PCA residual the tier's codes leave."""
    ids = np.sort(rng.choice(store.ids(), size=min(len(store), 8192), replace=False))
    x = store.get(ids)
    sims = x[:1000] @ x.T
    sims[np.arange(1000), np.arange(1000)] = np.nan
    out = {
        "zero_share": round(float((x == 0).mean()), 3),
        "cosine_median": round(float(np.nanmedian(sims)), 3),
        "nearest_cosine_median": round(float(np.nanmedian(np.nanmax(sims, axis=1))), 3),
    }
    tier = store.tier()
    if hasattr(tier, "project"):
        rho = tier.project(x[:1000])[:, tier.p]
        out["pca_residual_norm_median"] = round(float(np.median(rho)), 3)
    return out


def keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(a, b) * n + np.maximum(a, b)


def scale(args: argparse.Namespace) -> None:
    from finder.act import candidates
    from finder.act.dupes import MIN_COSINE
    from finder.store.vectors import VectorStore

    n = args.scale
    directory = args.workdir / f"dupes-{n}"
    load = [round(x, 1) for x in os.getloadavg()]
    print(f"load average at start: {load}", file=sys.stderr)
    result: dict = {"n": n, "dim": DIM, "min_cosine": MIN_COSINE, "load_start": load}
    if args.reuse and (directory / "planted.npy").exists():
        planted = np.load(directory / "planted.npy")
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        need = n * DIM * 2 * 1.3
        if shutil.disk_usage(args.workdir).free < need:
            sys.exit(f"bench_dupes: need {need / 1e9:.1f} GB free under {args.workdir}")
        t = clock()
        store, planted = build_store(n, directory)
        result["generate_seconds"] = since(t)[0]
        result["rss_after_generate_gb"] = peak_rss_gb()
        t = clock()
        store.save_index()  # what finder index does at the end of a run
        result["index_build_seconds"], result["index_build_cpu"] = since(t)
        result["rss_after_index_build_gb"] = peak_rss_gb()
        store.close()
        np.save(directory / "planted.npy", planted)
        print(f"built: {result}", file=sys.stderr, flush=True)
    store = VectorStore(directory, DIM, read_only=True)
    t = clock()
    store.tier()  # loads the saved index (as finder dupes does)
    result["index_load_seconds"] = since(t)[0]
    result["tier"] = store.index_name()
    result["shape"] = shape_of(store, np.random.default_rng(3))
    print(f"tier {result['tier']}, vectors {result['shape']}", file=sys.stderr, flush=True)
    ids = store.ids()

    t = clock()
    cand = candidates.index_candidates(store, ids, MIN_COSINE, probes=args.probes)
    if cand is None:
        sys.exit("bench_dupes: the store searches exactly at this size; use a larger --scale")
    join_s, join_cpu = since(t)
    t = clock()
    cos = candidates.cosines(store, *cand)
    rescore_s, rescore_cpu = since(t)
    result["rss_after_candidates_gb"] = peak_rss_gb()
    hit = cos >= np.float32(MIN_COSINE)
    found = keys(cand[0][hit], cand[1][hit], n)
    result.update(
        probes=args.probes,
        candidates=len(cand[0]),
        pairs=int(hit.sum()),
        join_seconds=join_s,
        join_cpu=join_cpu,
        rescore_seconds=rescore_s,
        rescore_cpu=rescore_cpu,
        candidate_seconds=round(join_s + rescore_s, 1),
        candidate_cpu=round(join_cpu + rescore_cpu, 1),
    )
    print(f"index way: {result}", file=sys.stderr, flush=True)

    # The planted pairs at or above the threshold (exact cosine): found?
    order = np.lexsort((planted[:, 1], planted[:, 0]))
    planted = planted[order]
    pc = candidates.cosines(store, planted[:, 0], planted[:, 1])
    above = pc >= np.float32(MIN_COSINE)
    for kind, name in ((0, "copies"), (1, "bursts")):
        mine = above & (planted[:, 2] == kind)
        got = np.isin(keys(planted[mine, 0], planted[mine, 1], n), found)
        result[f"planted_{name}"] = int(mine.sum())
        result[f"planted_{name}_recall"] = round(float(got.mean()), 4) if mine.any() else None

    result["candidate_recall"] = result["exact_seconds"] = None
    if args.exact if args.exact is not None else n <= EXACT_UP_TO:
        t = clock()
        exact = candidates.exact_pairs(store, ids, MIN_COSINE)
        result["exact_seconds"], result["exact_cpu"] = since(t)
        truth = keys(exact.a, exact.b, n)
        result["exact_pairs"] = len(truth)
        result["candidate_recall"] = round(float(np.isin(truth, found).mean()), 5)
        result["extra_pairs"] = int((~np.isin(found, truth)).sum())  # must be 0: exact scores
        result["time_ratio"] = round(result["candidate_seconds"] / result["exact_seconds"], 4)
        result["cpu_ratio"] = round(result["candidate_cpu"] / result["exact_cpu"], 4)
    result["load_end"] = [round(x, 1) for x in os.getloadavg()]
    result["peak_rss_gb"] = peak_rss_gb()
    store.close()
    if not args.keep_store:
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=Path, default=SHARED / "photos")
    ap.add_argument(
        "--model",
        type=Path,
        default=SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    )
    ap.add_argument("--keep", type=Path, help="build (or reuse) the corpus and library here")
    ap.add_argument(
        "--margins",
        action="store_true",
        help="also print the pixel correlation of the weakest true and strongest false candidate",
    )
    ap.add_argument(
        "--index",
        action="store_true",
        help="candidate pairs from an IVF tier forced on this small library",
    )
    ap.add_argument("--scale", type=int, metavar="N", help="the candidate stage on N vectors")
    ap.add_argument(
        "--exact",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"with --scale: the exact way too (default: up to {EXACT_UP_TO:,} vectors)",
    )
    ap.add_argument("--probes", type=int, default=None, help="with --scale: lists joined")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-dupes")
    ap.add_argument("--keep-store", action="store_true", help="with --scale: keep the store")
    ap.add_argument("--reuse", action="store_true", help="with --scale: reuse a kept store")
    args = ap.parse_args()
    if args.scale:
        from finder.act.candidates import PROBES

        args.probes = args.probes or PROBES
        scale(args)
        return
    for need in (args.photos, args.model):
        if not need.exists():
            sys.exit(f"bench_dupes: {need} is missing")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-dupes-"))
    root, lib_dir = work / "photos", work / "library"
    try:
        t0 = time.perf_counter()
        if (work / "truth.json").exists():
            truth = json.loads((work / "truth.json").read_text())
        else:
            truth = make_corpus(args.photos, root)
            (work / "truth.json").write_text(json.dumps(truth))
        print(f"corpus: {len(truth)} files ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        choice = BackboneChoice(model=str(args.model))
        with Library(lib_dir, backbone=choice) as lib:
            t0 = time.perf_counter()
            summary = lib.index([str(root)])
            index_seconds = time.perf_counter() - t0
            print(f"indexed: {summary.embedded} new ({index_seconds:.1f} s)", file=sys.stderr)
            t0 = time.perf_counter()
            if args.index:
                groups = dupes_through_index(lib)
            else:
                groups = lib.dupes()
            seconds = time.perf_counter() - t0
            margins = candidate_margins(lib, truth) if args.margins else {}
        found = pairs_of(groups)
        true = {
            tuple(sorted(p))
            for p in itertools.combinations(sorted(truth), 2)
            if truth[p[0]][0] == truth[p[1]][0]
        }
        hits = found & true
        false = sorted(found - true)
        same_class = [p for p in false if truth[p[0]][1] == truth[p[1]][1]]
        for a, b in false[:20]:
            print(f"false pair: {a}  {b}", file=sys.stderr)
        for a, b in sorted(true - found)[:20]:
            print(f"missed pair: {a}  {b}", file=sys.stderr)
        missed_by_edit: dict[str, int] = {}
        for a, b in true - found:
            for p in (a, b):
                if "/edited/" in p:
                    kind = Path(p).parent.name
                    missed_by_edit[kind] = missed_by_edit.get(kind, 0) + 1
        result = {
            "files": len(truth),
            "groups": len(groups),
            "identical_groups": sum(g.kind == "identical" for g in groups),
            "pairs": len(found),
            "true_pairs": len(true),
            "precision": round(len(hits) / len(found), 4) if found else 1.0,
            "recall": round(len(hits) / len(true), 4) if true else 1.0,
            "false_pairs": len(false),
            "same_class_false": len(same_class),
            "missed_by_edit": missed_by_edit,
            **margins,
            "seconds": round(seconds, 2),
            "index_seconds": round(index_seconds, 1),
        }
        print(json.dumps(result))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
