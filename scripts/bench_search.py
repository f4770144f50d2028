"""Search speed, memory and recall of finder's VectorStore on a large synthetic library.

    python scripts/bench_search.py --n 100000
    python scripts/bench_search.py --n 1000000          # writes an 8 GB raw file under --workdir

What it does, in one run:

1. Real embeddings. The 540 photos of ../shared/photos go through the real TFLite MobileNet
   embedding model (224x224 RGB uint8, output dequantised with the interpreter's scale and zero
   point) in a child process (TensorFlow never enters this process); cached in /tmp.
2. A synthetic distribution fitted to them. On the unit-normalised real vectors we measure the
   squared norm of the mean (the shared "everything is a photo" direction), the variance between
   class means and within classes, and the eigen-spectrum of the centred data, to which we fit a
   power law ``lambda_i = c * i**-alpha`` over components 3..300 (beyond ~300 the 540-sample
   estimate collapses). The model extends that power law to ``--dim`` components and rescales it
   to the measured total variance, split between cluster means (between-class share) and
   within-cluster scatter (within-class spectrum fitted the same way). Vectors are
   ``mean + U (a_cluster + noise)`` with cluster sizes drawn from a Dirichlet, one cluster per
   1000 images, then unit-normalised. ``U`` is a random orthonormal basis (a random permutation
   of coordinates followed by block-diagonal random rotations of 512 dimensions, so generation
   costs 1/8 of a dense rotation; the store's PCA does not care about the basis).
3. Build: the vectors are generated in chunks of 16384 and appended straight into a
   VectorStore (float16 raw file; never all in RAM), then ``save_index()`` trains and saves the
   index the store picks for that size. Build time = appends + index training/filling.
4. Queries. ``find``: heads trained with finder.learn.train.train_head (whatever ``finder learn``
   currently does) on 5 examples of a synthetic cluster plus ``BACKGROUND_SIZE`` random
   background vectors, top 100. ``similar``: stored vectors as queries (themselves excluded),
   top 20 for latency, top 100 for recall. ``--min-prob``: two thresholds per head, the logit
   keeping ``--min-frac`` (0.5 %) of the library (``min_prob_*``) and probability 0.5, i.e.
   logit 0, a head's default cut-off (``prob_0_5_*``).
5. Search runs in a fresh child process that opens the store from disk (as ``finder find``
   would), so its resident memory is what search needs: we report the peak RSS during the
   queries minus the RSS of the same interpreter before opening the store (numpy + faiss
   imported), per image, and also the whole process RSS per image.
6. Filtered search (``finder find/similar --after/--camera/--under/--near``): a catalog of the
   same n images with synthetic photo facts (dates over 20 years, 4 cameras, 256 folders in 16
   groups, GPS positions on 80 %), and the same queries narrowed by filters that keep from 0.4 %
   to 50 % of the library, run in the same child right after the unfiltered ones
   (``finder.store.filtered.search``, what the library calls). Each filtered time is divided by
   the unfiltered time of the same kind of query (``*_vs_unfiltered``, the goal is under 2);
   threshold sets are compared with the brute-force filter of the exact scores, top-k results
   give their recall against the exact filtered top k. ``--no-filters`` skips this.
7. Baseline: a plain numpy exhaustive scan of the raw float16 vectors (chunks converted to
   float32, matrix-vector product, top-k) for a few queries, timed side by side; the same scan
   gives the exact rankings and threshold sets that recall and min_prob_exact_set are measured
   against.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finder.learn.train import BACKGROUND_SIZE, train_head  # noqa: E402
from finder.store import filtered  # noqa: E402
from finder.store.catalog import Catalog  # noqa: E402
from finder.store.facts import Filters, distance_km  # noqa: E402
from finder.store.vectors import CHUNK, VectorStore, exact_scores  # noqa: E402

PHOTOS = REPO.parent / "shared" / "photos"
MODEL = REPO.parent / "shared" / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
REAL_CACHE = Path("/tmp/finder_bench_real_embeddings.npz")
BLOCK = 512

EMBED_CHILD = r"""
import sys, numpy as np
from pathlib import Path
from PIL import Image
import tensorflow as tf
photos, model, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
paths = sorted(p for p in photos.rglob("*.jpg"))
it = tf.lite.Interpreter(model_path=model, num_threads=2)
it.allocate_tensors()
inp, outd = it.get_input_details()[0], it.get_output_details()[0]
scale, zero = outd["quantization"]
emb = []
for p in paths:
    img = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
    it.set_tensor(inp["index"], np.asarray(img, dtype=np.uint8)[None])
    it.invoke()
    q = it.get_tensor(outd["index"]).reshape(-1).astype(np.float32)
    emb.append((q - zero) * scale)
labels = [p.parent.name for p in paths]
np.savez(out, emb=np.stack(emb), labels=np.array(labels))
"""


def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    if not REAL_CACHE.exists():
        print(f"embedding {PHOTOS} with {MODEL.name} (child process) ...", flush=True)
        tmp = REAL_CACHE.with_name(REAL_CACHE.stem + ".tmp.npz")
        subprocess.run(
            [sys.executable, "-c", EMBED_CHILD, str(PHOTOS), str(MODEL), str(tmp)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        os.replace(tmp, REAL_CACHE)
    data = np.load(REAL_CACHE)
    return data["emb"], data["labels"]


def fit_power_law(values: np.ndarray, lo: int = 3, hi: int = 300) -> tuple[float, float]:
    i = np.arange(1, len(values) + 1)
    keep = (i >= lo) & (i <= min(hi, len(values))) & (values > 0)
    slope, intercept = np.polyfit(np.log(i[keep]), np.log(values[keep]), 1)
    return float(-slope), float(np.exp(intercept))


def fit_model(emb: np.ndarray, labels: np.ndarray) -> dict:
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    mean = x.mean(axis=0)
    centred = x - mean
    spectrum = np.linalg.svd(centred, compute_uv=False) ** 2 / len(x)
    classes = np.unique(labels)
    within = np.concatenate([x[labels == c] - x[labels == c].mean(axis=0) for c in classes])
    w_spectrum = np.linalg.svd(within, compute_uv=False) ** 2 / len(x)
    class_means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    between_var = float(((class_means - mean) ** 2).sum(axis=1).mean())
    within_var = float((within**2).sum(axis=1).mean())
    alpha, _ = fit_power_law(spectrum)
    alpha_w, _ = fit_power_law(w_spectrum)
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    return {
        "real_n": len(x),
        "real_dim": x.shape[1],
        "mean_sq_norm": float(mean @ mean),
        "between_var": between_var,
        "within_var": within_var,
        "alpha_between": alpha,
        "alpha_within": alpha_w,
        "real_nn_cos_median": float(np.median(sims.max(axis=1))),
    }


class Synthetic:
    """Clustered unit vectors with a power-law spectrum (see the module docstring)."""

    def __init__(self, model: dict, dim: int, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        i = np.arange(1, dim + 1, dtype=np.float64)
        lam_b = i ** -model["alpha_between"]
        lam_w = i ** -model["alpha_within"]
        self.sd_between = np.sqrt(lam_b / lam_b.sum() * model["between_var"]).astype(np.float32)
        self.sd_within = np.sqrt(lam_w / lam_w.sum() * model["within_var"]).astype(np.float32)
        direction = rng.normal(size=dim)
        self.mean = (direction / np.linalg.norm(direction) * sqrt_(model["mean_sq_norm"])).astype(
            np.float32
        )
        self.k = max(20, n // 1000)
        self.centres = (rng.normal(size=(self.k, dim)) * self.sd_between).astype(np.float32)
        self.weights = rng.dirichlet(np.full(self.k, 2.0))
        self.perm = rng.permutation(dim)
        nb = dim // BLOCK if dim % BLOCK == 0 and dim > BLOCK else 1
        size = dim // nb
        self.blocks = [
            np.linalg.qr(rng.normal(size=(size, size)))[0].astype(np.float32) for _ in range(nb)
        ]

    def rotate(self, a: np.ndarray) -> np.ndarray:
        a = a[:, self.perm]
        size = self.blocks[0].shape[0]
        out = np.empty_like(a)
        for j, block in enumerate(self.blocks):
            out[:, j * size : (j + 1) * size] = a[:, j * size : (j + 1) * size] @ block
        return out

    def chunk(self, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.choice(self.k, size=m, p=self.weights)
        a = rng.standard_normal(size=(m, self.dim), dtype=np.float32)
        a *= self.sd_within
        a += self.centres[labels]
        x = self.rotate(a)
        x += self.mean
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x, labels.astype(np.int32)


def sqrt_(v: float) -> float:
    return float(np.sqrt(v))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times) * 1000.0, q))


# -- the search child ----------------------------------------------------------------------------


def search_child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    data = np.load(spec["queries"])
    base_rss = rss()
    t0 = time.perf_counter()
    store = VectorStore(spec["store"], spec["dim"], **spec["store_kwargs"])
    store.search_similar(data["sim_q"][0], 20)  # forces the index in memory
    open_s = time.perf_counter() - t0
    peak = rss()
    out: dict = {"open_s": open_s, "index": store.index_name(), "stats": store.stats()}
    find_t, find_ids = [], []
    for w, b in zip(data["head_w"], data["head_b"], strict=True):
        t = time.perf_counter()
        ids, _ = store.search_linear(w, float(b), k=100)
        find_t.append(time.perf_counter() - t)
        find_ids.append(np.pad(ids, (0, 100 - len(ids)), constant_values=-1))
        peak = max(peak, rss())
    sim_t, sim_ids, sim20 = [], [], []
    for q, qid in zip(data["sim_q"], data["sim_id"], strict=True):
        ex = np.array([qid])
        t = time.perf_counter()
        ids20, _ = store.search_similar(q, 20, exclude_ids=ex)
        sim_t.append(time.perf_counter() - t)
        sim20.append(np.pad(ids20, (0, 20 - len(ids20)), constant_values=-1))
        ids, _ = store.search_similar(q, 100, exclude_ids=ex)
        sim_ids.append(np.pad(ids, (0, 100 - len(ids)), constant_values=-1))
        peak = max(peak, rss())
    mp_t, mp_sets = [], []
    for h, t_logit in zip(data["mp_head"], data["min_logit"], strict=True):
        w, b = data["head_w"][h], data["head_b"][h]
        t = time.perf_counter()
        ids, _ = store.search_linear(w, float(b), min_score=float(t_logit))
        mp_t.append(time.perf_counter() - t)
        mp_sets.append(ids)
        peak = max(peak, rss())
    out.update(
        base_rss=base_rss,
        peak_rss=peak,
        find_t=find_t,
        sim_t=sim_t,
        mp_t=mp_t,
    )
    if spec.get("catalog"):
        out["filtered"] = filtered_child(spec, data, store)
    np.savez(
        spec["result"],
        find_ids=np.stack(find_ids),
        sim_ids=np.stack(sim_ids),
        sim20=np.stack(sim20),
        mp_lens=np.array([len(s) for s in mp_sets]),
        mp_all=np.concatenate(mp_sets) if mp_sets else np.zeros(0, np.int64),
    )
    Path(spec["result_json"]).write_text(json.dumps(out))


# -- filtered search -----------------------------------------------------------------------------

CAMERAS = [("Canon", "EOS 5D"), ("NIKON CORPORATION", "NIKON D750"), ("Apple", "iPhone 12")]
CAMERAS.append(("SONY", "ILCE-7M3"))


def synthetic_facts(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Deterministic facts of image ids: year 2005-2024, camera id % 4, folder id % 256 (in 16
    groups of 16), a GPS position (uniform on the sphere) for 4 ids in 5."""
    rng = np.random.default_rng(5)
    year = 2005 + (ids * 7919) % 20
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, len(ids))))
    lon = rng.uniform(-180, 180, len(ids))
    has_gps = ids % 5 != 0
    return {
        "year": year,
        "camera": ids % 4,
        "folder": ids % 256,
        "lat": np.where(has_gps, lat, np.nan),
        "lon": np.where(has_gps, lon, np.nan),
    }


def filter_specs(root: Path) -> dict[str, dict]:
    """Filters (Filters keyword arguments) from broad to narrow."""
    return {
        "after_2015": {"after": "2015"},
        "camera_nikon": {"camera": "nikon"},
        "after_2015_nikon": {"after": "2015", "camera": "nikon"},
        "under_group": {"under": str(root / "03")},
        "near_1500km": {"near": (45.0, 7.0), "within_km": 1500.0},
        "under_folder": {"under": str(root / "03" / "07")},
    }


def filter_mask(name: str, f: dict[str, np.ndarray]) -> np.ndarray:
    if name == "after_2015":
        return f["year"] >= 2015
    if name == "camera_nikon":
        return f["camera"] == 1
    if name == "after_2015_nikon":
        return (f["year"] >= 2015) & (f["camera"] == 1)
    if name == "under_group":
        return f["folder"] // 16 == 3
    if name == "under_folder":
        return f["folder"] == 3 * 16 + 7
    if name == "near_1500km":
        ok = ~np.isnan(f["lat"])
        d = np.full(len(ok), np.inf)
        d[ok] = distance_km((45.0, 7.0), f["lat"][ok], f["lon"][ok])
        return d <= 1500.0
    raise KeyError(name)


def build_catalog(path: Path, root: Path, n: int) -> dict[str, np.ndarray]:
    """A finder catalog of n ok images (ids 0..n-1, as in the store) with synthetic facts."""
    path.unlink(missing_ok=True)
    for g in range(16):
        for k in range(16):
            (root / f"{g:02d}" / f"{k:02d}").mkdir(parents=True, exist_ok=True)
    ids = np.arange(n, dtype=np.int64)
    facts = synthetic_facts(ids)
    cat = Catalog(path)
    conn = cat.db.conn
    with cat.transaction():
        conn.executemany(
            "INSERT INTO cameras(id, make, model) VALUES (?, ?, ?)",
            [(i, make, model) for i, (make, model) in enumerate(CAMERAS)],
        )
        for start in range(0, n, 100_000):
            part = range(start, min(n, start + 100_000))
            conn.executemany(
                "INSERT INTO images(id, path, size, mtime_ns, status, updated, taken, "
                "date_source, camera_id, lat, lon, width, height) "
                "VALUES (?, ?, 1, 1, 'ok', 0, ?, 'exif', ?, ?, ?, 4000, 3000)",
                (
                    (
                        i,
                        os.fsencode(
                            f"{root}/{facts['folder'][i] // 16:02d}/{facts['folder'][i] % 16:02d}"
                            f"/img{i}.jpg"
                        ),
                        f"{facts['year'][i]}-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00",
                        int(facts["camera"][i]),
                        None if np.isnan(facts["lat"][i]) else float(facts["lat"][i]),
                        None if np.isnan(facts["lon"][i]) else float(facts["lon"][i]),
                    )
                    for i in part
                ),
            )
    conn.execute("ANALYZE")
    cat.close()
    return facts


def filtered_child(spec: dict, data, store: VectorStore) -> dict:
    """Time the filtered queries; their ids go to ``spec["filtered_result"]``."""
    cat = Catalog(Path(spec["catalog"]))
    times: dict[str, dict[str, list[float]]] = {}
    saved: dict[str, np.ndarray] = {}
    n_sim = spec["filtered_similar"]
    for name, kw in spec["filters"].items():
        f = Filters(**kw)
        t_top, t_mp, t_sim, tops, mps, sims = [], [], [], [], [], []
        for w, b in zip(data["head_w"], data["head_b"], strict=True):
            t = time.perf_counter()
            ids, _ = filtered.search(cat, store, f, w, float(b), k=100)
            t_top.append(time.perf_counter() - t)
            tops.append(np.pad(ids, (0, 100 - len(ids)), constant_values=-1))
        for h, t_logit in zip(data["mp_head"], data["min_logit"], strict=True):
            w, b = data["head_w"][h], data["head_b"][h]
            t = time.perf_counter()
            ids, _ = filtered.search(cat, store, f, w, float(b), min_score=float(t_logit))
            t_mp.append(time.perf_counter() - t)
            mps.append(ids)
        for q, qid in list(zip(data["sim_q"], data["sim_id"], strict=True))[:n_sim]:
            t = time.perf_counter()
            ids, _ = filtered.search(
                cat, store, f, q, k=20, head=False, exclude_ids=np.array([qid], dtype=np.int64)
            )
            t_sim.append(time.perf_counter() - t)
            sims.append(np.pad(ids, (0, 20 - len(ids)), constant_values=-1))
        times[name] = {"top": t_top, "mp": t_mp, "sim": t_sim}
        saved[f"{name}__top"] = np.stack(tops)
        saved[f"{name}__sim"] = np.stack(sims)
        saved[f"{name}__mp_lens"] = np.array([len(s) for s in mps])
        saved[f"{name}__mp_all"] = np.concatenate(mps) if mps else np.zeros(0, np.int64)
    np.savez(spec["filtered_result"], **saved)
    cat.close()
    return times


def filtered_figures(
    spec: dict,
    res: dict,
    facts: dict[str, np.ndarray],
    head_scores: np.ndarray,
    sim_scores: np.ndarray,
    min_logit: np.ndarray,
    mp_head: np.ndarray,
    heads_n: int,
) -> dict:
    """Per filter: share kept, times and their ratio to the unfiltered ones, exactness."""
    got = np.load(spec["filtered_result"])
    base_top = percentile_ms(res["find_t"], 50)
    base_mp = float(np.median(res["mp_t"][:heads_n]))
    base_p05 = float(np.median(res["mp_t"][heads_n:]))
    base_sim = percentile_ms(res["sim_t"], 50)
    out: dict = {}
    for name, t in res["filtered"].items():
        mask = filter_mask(name, facts)
        allowed = np.flatnonzero(mask)
        recall = []
        for h in range(heads_n):
            s = head_scores[h][allowed]
            exact = allowed[np.argsort(-s, kind="stable")[:100]]
            found = set(got[f"{name}__top"][h].tolist())
            recall.append(len(set(exact.tolist()) & found) / max(len(exact), 1))
        sim_recall = []
        for j in range(len(t["sim"])):
            s = sim_scores[j][allowed]
            exact = allowed[np.argsort(-s, kind="stable")[:20]]
            exact = exact[np.isfinite(sim_scores[j][exact])]
            found = set(got[f"{name}__sim"][j].tolist())
            sim_recall.append(len(set(exact.tolist()) & found) / max(len(exact), 1))
        lens = got[f"{name}__mp_lens"]
        offsets = np.concatenate([[0], np.cumsum(lens)])
        same = []
        for j, h in enumerate(mp_head):
            returned = set(got[f"{name}__mp_all"][offsets[j] : offsets[j + 1]].tolist())
            exact = set(
                np.flatnonzero(mask & (head_scores[h] >= np.float32(min_logit[j]))).tolist()
            )
            same.append(returned == exact)
        top = percentile_ms(t["top"], 50)
        mp = float(np.median(t["mp"][:heads_n]))
        p05 = float(np.median(t["mp"][heads_n:]))
        sim = percentile_ms(t["sim"], 50)
        out[name] = {
            "kept": round(float(mask.mean()), 4),
            "find_top100_p50_ms": round(top, 2),
            "find_top100_vs_unfiltered": round(top / base_top, 2),
            "find_recall_at_100": round(float(np.mean(recall)), 4),
            "min_prob_s": round(mp, 3),
            "min_prob_vs_unfiltered": round(mp / base_mp, 2),
            "prob_0_5_s": round(p05, 3),
            "prob_0_5_vs_unfiltered": round(p05 / base_p05, 2),
            "threshold_sets_exact": bool(all(same)),
            "similar_top20_p50_ms": round(sim, 2),
            "similar_top20_vs_unfiltered": round(sim / base_sim, 2),
            "similar_recall_at_20": round(float(np.mean(sim_recall)), 4),
        }
    return out


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/finder_bench_search"))
    ap.add_argument("--heads", type=int, default=20, help="find / min-prob queries")
    ap.add_argument("--similar", type=int, default=100, help="similar queries")
    ap.add_argument("--baseline-queries", type=int, default=3)
    ap.add_argument("--min-frac", type=float, default=0.005, help="share above the threshold")
    ap.add_argument("--memory-budget", type=int, default=None)
    ap.add_argument("--nprobe", type=int, default=None)
    ap.add_argument("--rescore", type=int, default=None)
    ap.add_argument("--pca-dim", type=int, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse a store built by an earlier run")
    ap.add_argument("--rebuild", action="store_true", help="with --reuse: rebuild the index")
    ap.add_argument("--keep", action="store_true", help="keep the store (8 GB at 1M) afterwards")
    ap.add_argument("--no-filters", action="store_true", help="skip the filtered searches")
    ap.add_argument("--filtered-similar", type=int, default=20, help="filtered similar queries")
    ap.add_argument("--_search-child", dest="child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        search_child(args.child)
        return

    n, dim = args.n, args.dim
    emb, labels = real_embeddings()
    model = fit_model(emb, labels)
    print("fitted to real embeddings:", json.dumps({k: round(v, 4) for k, v in model.items()}))
    gen = Synthetic(model, dim, n)
    store_dir = args.workdir / f"store-{n}-{dim}"
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    need = n * dim * 2 * 1.3
    if not (args.reuse and store_dir.exists()) and free < need:
        sys.exit(f"not enough disk under {work}: need {need / 1e9:.1f} GB, have {free / 1e9:.1f}")

    store_kwargs: dict = {}
    if args.memory_budget:
        store_kwargs["memory_budget"] = args.memory_budget
    if args.nprobe:
        store_kwargs["nprobe"] = args.nprobe
    if args.rescore:
        store_kwargs["rescore"] = args.rescore
    if args.pca_dim:
        store_kwargs["pca_dim"] = args.pca_dim

    labels_path = work / f"labels-{n}-{dim}.npy"
    rng = np.random.default_rng(1)
    if args.reuse and store_dir.exists() and labels_path.exists():
        cluster = np.load(labels_path)
        build_s = float("nan")
        store = VectorStore(store_dir, dim, **store_kwargs)
        t = time.perf_counter()
        if args.rebuild:
            print(f"reusing {store_dir}; rebuilt index: {store.rebuild_index()}", flush=True)
            store.save_index()
            print(f"index rebuild {time.perf_counter() - t:.1f} s", flush=True)
    else:
        shutil.rmtree(store_dir, ignore_errors=True)
        store = VectorStore(store_dir, dim, **store_kwargs)
        cluster = np.empty(n, dtype=np.int32)
        gen_s = add_s = 0.0
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            t = time.perf_counter()
            x, lab = gen.chunk(m, rng)
            gen_s += time.perf_counter() - t
            cluster[start : start + m] = lab
            t = time.perf_counter()
            store.add(np.arange(start, start + m, dtype=np.int64), x)
            add_s += time.perf_counter() - t
            if (start // CHUNK) % 8 == 0:
                print(f"  generated {start + m}/{n}", flush=True)
        t = time.perf_counter()
        store.commit()
        store.save_index()
        index_s = time.perf_counter() - t
        build_s = add_s + index_s
        np.save(labels_path, cluster)
        print(
            f"build: appends {add_s:.1f} s, index {index_s:.1f} s "
            f"(generation {gen_s:.1f} s, not counted)",
            flush=True,
        )

    # Queries: heads on synthetic clusters (5 examples + 300 background), stored vectors.
    qrng = np.random.default_rng(2)
    head_w, head_b = [], []
    big = np.flatnonzero(np.bincount(cluster, minlength=gen.k) >= 20)
    for c in qrng.choice(big, size=args.heads, replace=len(big) < args.heads):
        members = np.flatnonzero(cluster == c)
        pos = store.get(np.sort(qrng.choice(members, size=5, replace=False)))
        bg = store.get(np.sort(qrng.choice(n, size=BACKGROUND_SIZE, replace=False)))
        head = train_head(pos, np.zeros((0, dim), np.float32), bg)
        head_w.append(head.w)
        head_b.append(head.b)
    head_w_arr = np.stack(head_w).astype(np.float32)
    head_b_arr = np.asarray(head_b, dtype=np.float64)
    sim_id = np.sort(qrng.choice(n, size=args.similar, replace=False))
    sim_q = store.get(sim_id)
    store.close()
    del store

    # Exact answers: one pass over the raw file. Head scores use exact_scores, the store's own
    # definition of an exact score (so a threshold set is compared like for like).
    t = time.perf_counter()
    raw = np.memmap(store_dir / "vectors-0.f16", dtype=np.float16, mode="r", shape=(n, dim))
    head_scores = np.empty((args.heads, n), dtype=np.float32)
    sim_scores = np.empty((args.similar, n), dtype=np.float32)
    for start in range(0, n, CHUNK):
        x16 = np.asarray(raw[start : start + CHUNK])
        end = start + len(x16)
        for h in range(args.heads):
            head_scores[h, start:end] = exact_scores(x16, head_w_arr[h]) + np.float32(head_b_arr[h])
        sim_scores[:, start:end] = (x16.astype(np.float32) @ sim_q.T).T
    del raw
    truth_s = time.perf_counter() - t
    sim_scores[np.arange(args.similar), sim_id] = -np.inf  # the query itself is excluded
    kth = max(1, int(round(args.min_frac * n)))
    # Two kinds of threshold per head: the logit that keeps --min-frac of the library, and
    # probability 0.5 (logit 0, a head's default cut-off).
    frac_logit = np.array([np.partition(s, -kth)[-kth] for s in head_scores])
    min_logit = np.concatenate([frac_logit, np.zeros(args.heads)])
    mp_head = np.concatenate([np.arange(args.heads), np.arange(args.heads)])

    # Baseline latency: the numpy exhaustive scan for single queries.
    base_t = []
    for h in range(min(args.baseline_queries, args.heads)):
        t = time.perf_counter()
        raw = np.memmap(store_dir / "vectors-0.f16", dtype=np.float16, mode="r", shape=(n, dim))
        parts = [  # plain numpy: float16 -> float32, matrix-vector product
            np.asarray(raw[s : s + CHUNK]).astype(np.float32) @ head_w_arr[h]
            for s in range(0, n, CHUNK)
        ]
        scores = np.concatenate(parts) + np.float32(head_b_arr[h])
        top = np.argpartition(-scores, 100)[:100]
        top[np.argsort(-scores[top])]
        del raw
        base_t.append(time.perf_counter() - t)

    # Search, measured in a fresh process.
    qpath = work / "queries.npz"
    np.savez(
        qpath,
        head_w=head_w_arr,
        head_b=head_b_arr,
        sim_q=sim_q,
        sim_id=sim_id,
        min_logit=min_logit,
        mp_head=mp_head,
    )
    spec = {
        "store": str(store_dir),
        "dim": dim,
        "store_kwargs": store_kwargs,
        "queries": str(qpath),
        "result": str(work / "result.npz"),
        "result_json": str(work / "result.json"),
    }
    facts = None
    if not args.no_filters:
        t = time.perf_counter()
        catalog_path = work / f"catalog-{n}.db"
        facts = build_catalog(catalog_path, work / "photos", n)
        print(f"catalog of {n} images with facts: {time.perf_counter() - t:.1f} s", flush=True)
        spec.update(
            catalog=str(catalog_path),
            filters=filter_specs(work / "photos"),
            filtered_result=str(work / "filtered.npz"),
            filtered_similar=args.filtered_similar,
        )
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run([sys.executable, __file__, "--_search-child", str(spec_path)], check=True)
    res = json.loads(Path(spec["result_json"]).read_text())
    got = np.load(spec["result"])

    find_recall = []
    for h in range(args.heads):
        exact = np.argpartition(-head_scores[h], 100)[:100]
        find_recall.append(len(set(exact.tolist()) & set(got["find_ids"][h].tolist())) / 100)
    sim_recall, sim_recall20 = [], []
    for j in range(args.similar):
        exact = np.argpartition(-sim_scores[j], 100)[:100]
        sim_recall.append(len(set(exact.tolist()) & set(got["sim_ids"][j].tolist())) / 100)
        exact = np.argpartition(-sim_scores[j], 20)[:20]
        sim_recall20.append(len(set(exact.tolist()) & set(got["sim20"][j].tolist())) / 20)
    offsets = np.concatenate([[0], np.cumsum(got["mp_lens"])])
    mp_same, mp_sizes = [], []
    for j, h in enumerate(mp_head):
        returned = set(got["mp_all"][offsets[j] : offsets[j + 1]].tolist())
        exact = set(np.flatnonzero(head_scores[h] >= np.float32(min_logit[j])).tolist())
        mp_sizes.append(len(exact))
        mp_same.append(returned == exact)
    heads_n = args.heads
    mp_t = np.asarray(res["mp_t"])
    same_set = all(mp_same[:heads_n])
    search_bytes = (res["peak_rss"] - res["base_rss"]) / n
    result = {
        "n": n,
        "dim": dim,
        "index": res["index"],
        "build_s": round(build_s, 1),
        "open_s": round(res["open_s"], 2),
        "bytes_per_image": round(search_bytes, 1),
        "process_rss_bytes_per_image": round(res["peak_rss"] / n, 1),
        "index_bytes_per_image": round(res["stats"]["bytes_in_memory"] / n, 1),
        "find_p50_ms": round(percentile_ms(res["find_t"], 50), 2),
        "find_p95_ms": round(percentile_ms(res["find_t"], 95), 2),
        "similar_p50_ms": round(percentile_ms(res["sim_t"], 50), 2),
        "similar_p95_ms": round(percentile_ms(res["sim_t"], 95), 2),
        "find_recall_at_100": round(float(np.mean(find_recall)), 4),
        "find_recall_min": round(float(np.min(find_recall)), 4),
        "similar_recall_at_100": round(float(np.mean(sim_recall)), 4),
        "similar_recall_min": round(float(np.min(sim_recall)), 4),
        "similar_recall_at_20": round(float(np.mean(sim_recall20)), 4),
        "min_prob_exact_set": bool(same_set),
        "min_prob_s": round(float(np.median(mp_t[:heads_n])), 3),
        "min_prob_p95_s": round(float(np.percentile(mp_t[:heads_n], 95)), 3),
        "min_prob_set_size_median": int(np.median(mp_sizes[:heads_n])),
        "min_prob_threshold": f"top {args.min_frac:.2%} of the library per head",
        "prob_0_5_exact_set": bool(all(mp_same[heads_n:])),
        "prob_0_5_s": round(float(np.median(mp_t[heads_n:])), 3),
        "prob_0_5_p95_s": round(float(np.percentile(mp_t[heads_n:], 95)), 3),
        "prob_0_5_set_size_median": int(np.median(mp_sizes[heads_n:])),
        "numpy_scan_p50_ms": round(percentile_ms(base_t, 50), 1),
        "numpy_scan_vs_find_p50": round(
            percentile_ms(base_t, 50) / max(percentile_ms(res["find_t"], 50), 1e-9), 1
        ),
        "ground_truth_pass_s": round(truth_s, 1),
    }
    if facts is not None:
        per = filtered_figures(
            spec, res, facts, head_scores, sim_scores, min_logit, mp_head, heads_n
        )
        ratios = [
            v[key]
            for v in per.values()
            for key in ("find_top100_vs_unfiltered", "min_prob_vs_unfiltered")
        ]
        result["filtered"] = per
        result["filtered_find_worst_vs_unfiltered"] = round(max(ratios), 2)
        result["filtered_threshold_sets_exact"] = all(
            v["threshold_sets_exact"] for v in per.values()
        )
        Path(spec["catalog"]).unlink(missing_ok=True)
    print()
    print(f"{'':28}{'finder':>12}{'numpy scan':>14}")
    print(
        f"{'find top 100, p50 ms':28}{result['find_p50_ms']:>12}{result['numpy_scan_p50_ms']:>14}"
    )
    print(f"{'find top 100, p95 ms':28}{result['find_p95_ms']:>12}")
    print(f"{'similar top 20, p50 ms':28}{result['similar_p50_ms']:>12}")
    print(f"{'similar top 20, p95 ms':28}{result['similar_p95_ms']:>12}")
    print(f"{'find recall@100':28}{result['find_recall_at_100']:>12}{1.0:>14}")
    print(f"{'similar recall@100':28}{result['similar_recall_at_100']:>12}{1.0:>14}")
    print(f"{'min-prob same set / s':28}{str(same_set):>7} {result['min_prob_s']:>4}")
    p05 = str(result["prob_0_5_exact_set"])
    print(f"{'prob>=0.5 same set / s':28}{p05:>7} {result['prob_0_5_s']:>4}")
    print(f"{'search RSS bytes/image':28}{result['bytes_per_image']:>12}")
    print(f"{'index':28}{result['index']}")
    if facts is not None:
        print()
        print(
            f"{'filter (kept)':26}{'top100 ms':>10}{'x':>6}{'min-prob s':>11}{'x':>6}"
            f"{'p0.5 s':>8}{'x':>6}{'sim ms':>8}{'x':>6}  exact  recall"
        )
        for name, v in result["filtered"].items():
            print(
                f"{name + ' (' + format(v['kept'], '.1%') + ')':26}"
                f"{v['find_top100_p50_ms']:>10}{v['find_top100_vs_unfiltered']:>6}"
                f"{v['min_prob_s']:>11}{v['min_prob_vs_unfiltered']:>6}"
                f"{v['prob_0_5_s']:>8}{v['prob_0_5_vs_unfiltered']:>6}"
                f"{v['similar_top20_p50_ms']:>8}{v['similar_top20_vs_unfiltered']:>6}"
                f"  {str(v['threshold_sets_exact']):5}  {v['find_recall_at_100']}"
            )
    if not args.keep:
        shutil.rmtree(store_dir, ignore_errors=True)
        labels_path.unlink(missing_ok=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
