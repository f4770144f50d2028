"""Embedding throughput end to end: the naive loop against finder's pipeline, side by side.

Over the photos under FOLDER (default ../shared/photos, the first --limit in walk order),
in one run on the same files:

(a) naive: walk, then for each file a full Pillow decode + resize, the backbone's
    preprocessing and ``model.predict`` on a batch of one (Keras backbones only);
(b) finder: walk fed lazily into ``finder.pipeline.embed_paths`` (threaded decode overlapping
    compiled fixed-shape batch inference);

both warmed up first (model built, functions traced), each timed from the start of the walk to the
last vector in hand, in --rounds rounds that alternate which of the two goes first (the machine is
shared: a burst of load from elsewhere then hits both alike); the figures are over all rounds.
Also the model alone on one decoded batch, and each --light backbone (a registry name or a
.tflite file) through finder's pipeline on the same files (median of 3 runs). The float32
matrix-multiply peak of this machine (numpy sgemm 4096x4096, all of numpy's BLAS threads, 5
products before the runs and after each round; their median) gives
ceiling_img_s = peak_gflops / gflops_per_image. Weights are random (weights=None): the FLOPs are
the same as with ImageNet weights.

    python scripts/bench_embed.py [FOLDER] [--limit 48] [--rounds 2] [--backbone vgg16]
        [--batch-size B] [--light NAMES]
    python scripts/bench_embed.py --rss [--rss-backbone mobilenetv3-large]
    python scripts/bench_embed.py --precision bfloat16 [--backbone vgg16] [--rounds 2]

--rss: peak resident memory while embedding N=1,000 and N=10,000 images (the photo list
repeated), each N in its own subprocess. Bar: peak at 10,000 <= 1.5x peak at 1,000.

--precision bfloat16: the backbone computing in float32 and in bfloat16 (the same weights: random,
or --weights FILE), each through finder's pipeline over every photo under FOLDER (--limit to cut),
in --rounds rounds that alternate which goes first; the CPU's flags, what `auto` would pick and
why. Agreement, over the vectors of the first round: the 1st percentile of the cosine similarity
of each photo's bfloat16 vector to its float32 vector, and how much the `similar` top-10 lists
agree (each photo's 10 nearest others by cosine, vectors stored as float16 as the library does:
the mean share of the float32 list found in the bfloat16 list). Bars: VGG16 bfloat16 >= 1.7x
float32 on a CPU with AVX512_BF16 or AMX; cos_p01 >= 0.999; similar_top10_agreement >= 0.95.

Bars: VGG16 end to end >= 70% of the matmul-bound ceiling and >= 2x the naive loop; a light
backbone >= 6x faster than VGG16 end to end. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finder.embed import registry, runtime  # noqa: E402
from finder.embed.pipeline import embed_paths  # noqa: E402
from finder.embed.runtime import PRECISIONS  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_ROOT = str(SHARED / "photos")
SHARED_TFLITE = str(SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")
EXTS = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def walk_paths(root: str, limit: int | None) -> Iterator[str]:
    """Photo paths under root in walk order (finder.crawl.walk when present)."""
    try:
        from finder.ingest.crawl import walk

        paths = (f.path for f in walk(root) if not f.is_dir)
    except ImportError:

        def _os_walk() -> Iterator[str]:
            for d, dirs, files in os.walk(root):
                dirs.sort()
                for f in sorted(files):
                    if os.path.splitext(f)[1].lower() in EXTS:
                        yield os.path.join(d, f)

        paths = _os_walk()
    for i, p in enumerate(paths):
        if limit is not None and i >= limit:
            return
        yield p


def matmul_peak(n: int = 4096, repeats: int = 5) -> list[float]:
    """GFLOP/s of float32 n x n matrix products (numpy's BLAS, all its threads)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        out.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return out


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            i = info[0]
            return (
                f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                f"threads={i.get('num_threads')}"
            )
    except ImportError:
        pass
    return "unknown BLAS"


def naive(root: str, limit: int, backbone) -> float:
    """Seconds for the naive loop: full decode, preprocess, model.predict on one image."""
    from PIL import Image

    size = backbone.info.input_size
    model = backbone.model
    t = time.perf_counter()
    n = 0
    for p in walk_paths(root, limit):
        try:
            with Image.open(p) as im:
                x = np.asarray(im.convert("RGB").resize(size, Image.BILINEAR))
        except OSError:
            continue
        model.predict(backbone.preprocess(x[None]), verbose=0)
        n += 1
    return time.perf_counter() - t


def finder_run(root: str, limit: int, backbone, batch_size: int | None) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    for _key, vec, _err in embed_paths(
        ((p, p) for p in walk_paths(root, limit)), backbone, batch_size=batch_size
    ):
        n += vec is not None
    return time.perf_counter() - t, n


def warm_up(backbone, n: int, batch_size: int) -> None:
    """Trace the shapes the timed run will use: a full batch and the remainder."""
    w, h = backbone.info.input_size
    x = np.zeros((batch_size, h, w, 3), np.uint8)
    saved = backbone.batch_size
    backbone.batch_size = batch_size
    try:
        backbone.embed(x)
        if n % batch_size:
            backbone.embed(x[: n % batch_size])
    finally:
        backbone.batch_size = saved


def model_only(backbone, batch_size: int) -> float:
    """Images per second of backbone.embed on one full batch of decoded pixels."""
    w, h = backbone.info.input_size
    x = np.random.default_rng(0).integers(0, 256, (batch_size, h, w, 3), dtype=np.uint8)
    saved = backbone.batch_size
    backbone.batch_size = batch_size
    try:
        t = time.perf_counter()
        backbone.embed(x)
        return batch_size / (time.perf_counter() - t)
    finally:
        backbone.batch_size = saved


def main_speed(args: argparse.Namespace) -> dict:
    root, limit = args.root, args.limit
    files = list(walk_paths(root, limit))
    n = n_files = len(files)
    if not n:
        sys.exit(f"no photos under {root}")
    print(f"{n} photos under {root}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    print(f"BLAS: {blas_description()}; cores: {runtime.cpu_count()}")
    peaks = matmul_peak()
    print(f"matmul peak: median {statistics.median(peaks):.1f} GFLOP/s")

    spec = registry.BACKBONES[args.backbone]
    backbone = registry.build(args.backbone, weights=args.weights)
    bs = args.batch_size or backbone.batch_size
    print(f"backbone {backbone.info.describe()}, batch {bs}, {spec.gflops} GFLOP/image")

    can_naive = hasattr(backbone, "model")
    if can_naive:
        x = np.zeros((1, *backbone.info.input_size[::-1], 3), np.uint8)
        backbone.model.predict(backbone.preprocess(x), verbose=0)  # warm-up
    warm_up(backbone, n, bs)
    # Rounds alternate which goes first, so a burst of load from elsewhere hits both alike.
    naive_s = finder_s = 0.0
    for r in range(args.rounds):
        order = ["naive", "finder"] if r % 2 == 0 else ["finder", "naive"]
        for what in order:
            if what == "naive" and can_naive:
                t = naive(root, limit, backbone)
                naive_s += t
                print(f"round {r + 1} (a) naive predict per image: {n / t:.2f} img/s ({t:.1f} s)")
            elif what == "finder":
                t, ok = finder_run(root, limit, backbone, bs)
                finder_s += t
                print(f"round {r + 1} (b) finder pipeline: {n / t:.2f} img/s ({t:.1f} s, {ok} ok)")
        more = matmul_peak()
        print(f"matmul peak: median {statistics.median(more):.1f} GFLOP/s")
        peaks += more
    n_total = n * args.rounds
    naive_s = naive_s or None
    alone = model_only(backbone, bs)
    if naive_s:
        print(f"(a) naive, all rounds:  {n_total / naive_s:.2f} img/s")
    print(f"(b) finder, all rounds: {n_total / finder_s:.2f} img/s", end="")
    print(f" = {naive_s / finder_s:.2f}x naive" if naive_s else "")
    print(f"    model alone, one batch: {alone:.2f} img/s")
    peak = statistics.median(peaks)
    print(f"matmul peak: median of {len(peaks)} = {peak:.1f} GFLOP/s (best {max(peaks):.1f})")
    n = n_total
    finder_img_s = n / finder_s
    result = {
        "backbone": args.backbone,
        "images": n_files,
        "rounds": args.rounds,
        "batch_size": bs,
        "naive_img_s": round(n / naive_s, 3) if naive_s else None,
        "finder_img_s": round(finder_img_s, 3),
        "model_only_img_s": round(alone, 3),
        "speedup_vs_naive": round(naive_s / finder_s, 2) if naive_s else None,
        "peak_gflops": round(peak, 1),
        "peak_gflops_best": round(max(peaks), 1),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }
    if spec.gflops:
        ceiling = peak / spec.gflops
        result |= {
            "gflops_per_image": spec.gflops,
            "finder_gflops": round(finder_img_s * spec.gflops, 1),
            "ceiling_img_s": round(ceiling, 3),
            "fraction_of_ceiling": round(finder_img_s / ceiling, 3),
        }
        print(
            f"finder: {finder_img_s * spec.gflops:.1f} GFLOP/s of a {peak:.1f} GFLOP/s peak: "
            f"{finder_img_s:.2f} of a ceiling of {ceiling:.2f} img/s = "
            f"{finder_img_s / ceiling:.0%}"
        )
    del backbone

    light = {}
    for name in [s for s in args.light.split(",") if s and s != args.backbone]:
        if name.endswith(".tflite"):  # a model file, e.g. the shared MobileNet v1 embedding
            if not os.path.isfile(name):
                print(f"light {name}: not found, skipped")
                continue
            lb = registry.build(model=name)
        else:
            lb = registry.build(name, weights=args.weights)
        lbs = lb.batch_size
        warm_up(lb, n_files, lbs)
        runs = [finder_run(root, limit, lb, lbs)[0] for _ in range(3)]
        name = os.path.basename(name)
        light[name] = round(n_files / statistics.median(runs), 2)
        ratio = light[name] / finder_img_s
        print(f"light {name}: {light[name]:.1f} img/s end to end = {ratio:.1f}x {args.backbone}")
        del lb
    if light:
        result["light_img_s"] = light
        result["light_speedup"] = {k: round(v / finder_img_s, 2) for k, v in light.items()}
    return result


def similar_top10_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's k nearest other rows (cosine, vectors stored as float16) under
    ``a`` that are also among its k nearest under ``b``."""

    def top(v: np.ndarray) -> np.ndarray:
        u = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        u = u.astype(np.float16).astype(np.float32)
        sims = u @ u.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]

    ta, tb = top(a), top(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def embed_all(files: list[str], backbone, batch_size: int) -> tuple[float, np.ndarray]:
    """Seconds for finder's pipeline over ``files``, and their vectors (in order)."""
    t = time.perf_counter()
    out = [
        vec for _k, vec, _e in embed_paths(((p, p) for p in files), backbone, batch_size=batch_size)
    ]
    seconds = time.perf_counter() - t
    return seconds, np.stack([v for v in out if v is not None])


def main_precision(args: argparse.Namespace) -> dict:
    files = list(walk_paths(args.root, args.limit))
    if len(files) < 11:
        sys.exit(f"need at least 11 photos under {args.root}")
    flags = runtime.cpu_flags()
    have = runtime.bf16_flags(flags)
    spec = registry.BACKBONES[args.backbone]
    auto = registry.pick_precision(spec, "auto")
    print(f"CPU flags: {' '.join(sorted(flags)) or '(unreadable)'}")
    print(f"bfloat16 flags: {', '.join(have) or 'none'}; cores: {runtime.cpu_count()}")
    print(f"auto picks {auto.precision} for {args.backbone}: {auto.reason}")
    print(f"{len(files)} photos under {args.root}")
    nets = {p: registry.build(args.backbone, weights=args.weights, precision=p) for p in PRECISIONS}
    bs = args.batch_size or nets["float32"].batch_size
    for net in nets.values():
        warm_up(net, len(files), bs)
    seconds = dict.fromkeys(PRECISIONS, 0.0)
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for p in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
            t, v = embed_all(files, nets[p], bs)
            seconds[p] += t
            vectors.setdefault(p, v)
            print(f"round {r + 1} {p}: {len(files) / t:.2f} img/s ({t:.1f} s, {len(v)} ok)")
    img_s = {p: len(files) * args.rounds / seconds[p] for p in PRECISIONS}
    a, b = vectors["float32"], vectors["bfloat16"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    agree = similar_top10_agreement(a, b)
    ratio = img_s["bfloat16"] / img_s["float32"]
    print(
        f"{args.backbone}: float32 {img_s['float32']:.2f} img/s, bfloat16 "
        f"{img_s['bfloat16']:.2f} img/s = {ratio:.2f}x; cosine p01 {np.percentile(cos, 1):.6f} "
        f"(min {cos.min():.6f}); similar top-10 agreement {agree:.1%}"
    )
    return {
        "backbone": args.backbone,
        "cpu_bf16": bool(have),
        "auto_precision": auto.precision,
        "float32_img_s": round(img_s["float32"], 3),
        "bfloat16_img_s": round(img_s["bfloat16"], 3),
        "ratio": round(ratio, 2),
        "cos_p01": round(float(np.percentile(cos, 1)), 6),
        "similar_top10_agreement": round(agree, 4),
    }


def rss_child(args: argparse.Namespace) -> None:
    files = list(walk_paths(args.root, args.limit))
    backbone = registry.build(args.rss_backbone, weights=args.weights)
    n = args.rss_child

    def items():
        for i in range(n):
            yield i, files[i % len(files)]

    done = 0
    baseline = None
    for _k, _v, _e in embed_paths(items(), backbone, batch_size=args.batch_size):
        done += 1
        if done == backbone.batch_size and baseline is None:
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"n": n, "done": done, "peak_mib": round(peak, 1), "after_first_batch_mib": baseline}
        )
    )


def main_rss(args: argparse.Namespace) -> dict:
    out = {}
    for n in (1_000, 10_000):
        cmd = [
            sys.executable,
            __file__,
            args.root,
            "--rss-child",
            str(n),
            "--rss-backbone",
            args.rss_backbone,
            "--limit",
            str(args.limit),
        ]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        if args.weights:
            cmd += ["--weights", args.weights]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"child for N={n} failed:\n{r.stderr[-3000:]}")
        rec = json.loads(r.stdout.strip().splitlines()[-1])
        secs = time.perf_counter() - t
        print(
            f"N={n:>6}: peak RSS {rec['peak_mib']:.0f} MiB (after the first batch "
            f"{rec['after_first_batch_mib']:.0f} MiB), {rec['done']} results in {secs:.0f} s"
        )
        out[n] = rec
    ratio = out[10_000]["peak_mib"] / out[1_000]["peak_mib"]
    grow = out[10_000]["peak_mib"] - out[10_000]["after_first_batch_mib"]
    print(
        f"peak at 10,000 / peak at 1,000 = {ratio:.3f} (bar <= 1.5: "
        f"{'met' if ratio <= 1.5 else 'NOT met'}); growth after the first batch at 10,000: "
        f"{grow:.0f} MiB"
    )
    return {
        "mode": "rss",
        "backbone": args.rss_backbone,
        "peak_mib_1000": out[1_000]["peak_mib"],
        "peak_mib_10000": out[10_000]["peak_mib"],
        "ratio": round(ratio, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("root", nargs="?", default=DEFAULT_ROOT)
    ap.add_argument(
        "--limit", type=int, default=None, help="photos to use (default 48; --precision: all)"
    )
    ap.add_argument("--rounds", type=int, default=2, help="naive/finder rounds (default 2)")
    ap.add_argument("--backbone", default="vgg16", choices=list(registry.BACKBONES)[:4])
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--weights", default=None, help="default: random init (same FLOPs)")
    ap.add_argument(
        "--light",
        default=f"mobilenetv3-large,efficientnetv2-b0,{SHARED_TFLITE}",
        help="light backbones (names or .tflite files) also run end to end on the same files "
        "('' for none)",
    )
    ap.add_argument(
        "--precision",
        choices=["bfloat16"],
        default=None,
        help="float32 beside bfloat16 over every photo (--limit to cut): speed and agreement",
    )
    ap.add_argument("--rss", action="store_true", help="peak memory at N=1,000 vs 10,000")
    ap.add_argument("--rss-backbone", default="mobilenetv3-large")
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not os.path.isdir(args.root):
        sys.exit(f"no such folder: {args.root}")
    if args.rss_child:
        rss_child(args)
        return
    if args.rss:
        args.limit = args.limit or 1000
        result = main_rss(args)
    elif args.precision:
        result = main_precision(args)
    else:
        args.limit = args.limit or 48
        result = main_speed(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
