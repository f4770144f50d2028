"""Reproduce the comparison of head-training methods in docs/heads.md.

Features: the shared TFLite MobileNet v1 embedding of every photo under ../shared/photos
(flowers17 and pets, 540 images), L2-normalised, cached in /tmp/finder_feats.npz (computed here
with ``tf.lite.Interpreter`` when missing: RGB squashed to 224x224 with Pillow BILINEAR, no crop,
uint8 output dequantised with the interpreter's own scale and zero point).

Protocol: ``finder.evaluate.few_shot`` over all 540 images as one library, k=5 examples, 10 trials
(seed 0), per method: flowers mean AP, cat AP, and precision/recall of the default output (no
flags) for cat and averaged over the 17 flowers.

    OMP_NUM_THREADS=1 python scripts/experiment_heads.py [--trials 10] [--json out.json]

``--features flip`` / ``--features tta4`` run the same protocol on test-time-augmented vectors
(2 / 4 model runs per image; cached in /tmp/finder_feats_flip.npz, /tmp/finder_feats_tta4.npz).
Rows 18-25 are issue 6's second round (ranking changes); run them on seeds 0 and 1 (10 trials)
and seed 0 (30 trials) with ``--only 18 19 ... --seed S --trials T``. ``--rankers`` prints how
well the training-time rankings (diffusion, with and without DBA) rank the library, no head.

``--recut`` instead trains the default head once per class and trial (seeds 0 and 1, 30 trials)
and compares cut-off rules on its logits: the ranking is fixed, only the cut moves.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.cutoff import CutConfig  # noqa: E402
from finder.learn.evaluate import few_shot, groups_from_paths, labels_from_paths  # noqa: E402
from scripts.heads_variants import VariantConfig as HeadConfig  # noqa: E402
from scripts.heads_variants import train_variant  # noqa: E402

SHARED = ROOT.parent / "shared"
PHOTOS = SHARED / "photos"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
CACHE = Path("/tmp/finder_feats.npz")


CACHES = {
    "squash": CACHE,
    "flip": Path("/tmp/finder_feats_flip.npz"),
    "tta4": Path("/tmp/finder_feats_tta4.npz"),
}


def _center_crop(im, short: int) -> np.ndarray:
    """Aspect kept: short side resized to ``short`` (Pillow BILINEAR), centre 224x224."""
    from PIL import Image

    w, h = im.size
    s = short / min(w, h)
    im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
    left, top = (im.size[0] - 224) // 2, (im.size[1] - 224) // 2
    return np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.uint8)


def features(kind: str = "squash") -> tuple[list[str], np.ndarray]:
    """The library's vectors. ``squash``: the pipeline's embedding (whole image squashed to
    224x224). Test-time augmentation, one vector per image (the normalised mean of the
    normalised views' embeddings): ``flip`` = squash + its mirror (2 model runs per image);
    ``tta4`` = flip + the centre 224 crop of the image resized to short side 256 + its mirror
    (4 model runs per image)."""
    cache = CACHES[kind]
    if cache.exists():
        data = np.load(cache)
        return [str(p) for p in data["paths"]], data["X"]
    if not PHOTOS.is_dir() or not MODEL.is_file():
        sys.exit(f"need {PHOTOS} and {MODEL}")
    import tensorflow as tf
    from PIL import Image

    paths = sorted(str(p) for p in PHOTOS.glob("*/*/*.jpg"))
    interp = tf.lite.Interpreter(model_path=str(MODEL), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = out["quantization"]

    def embed(a: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp["index"], np.ascontiguousarray(a)[None])
        interp.invoke()
        v = (interp.get_tensor(out["index"]).reshape(-1).astype(np.float32) - zero) * scale
        return v / np.linalg.norm(v)

    rows = []
    t0 = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            a = np.asarray(im.resize((224, 224), Image.BILINEAR), dtype=np.uint8)
            views = [a] if kind == "squash" else [a, a[:, ::-1]]
            if kind == "tta4":
                c = _center_crop(im, 256)
                views += [c, c[:, ::-1]]
        rows.append(np.sum([embed(v) for v in views], axis=0))
    seconds = time.perf_counter() - t0
    X = np.stack(rows)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = labels_from_paths(paths)
    np.savez(cache, paths=np.array(paths), labels=np.array(labels), X=X, seconds=seconds)
    print(f"embedded {len(paths)} images ({kind}) in {seconds:.0f} s", flush=True)
    return paths, X


PLAIN = HeadConfig(method="plain", C=1.0, cut=CutConfig(rule="fixed"))

METHODS: list[tuple[str, HeadConfig, int]] = [
    ("plain C=1, 300 background, cut 0.5 (the issue's baseline)", PLAIN, 300),
    ("plain C=1, 1000 background, cut 0.5", PLAIN, 1000),
    ("plain C=0.3", HeadConfig(method="plain", C=0.3, cut=CutConfig(rule="fixed")), 1000),
    ("plain C=3", HeadConfig(method="plain", C=3.0, cut=CutConfig(rule="fixed")), 1000),
    ("plain C=1, unbalanced weights", HeadConfig(method="plain", C=1.0, balanced=False), 1000),
    ("plain C=1, standardised features", HeadConfig(method="plain", C=1.0, standardize=True), 1000),
    (
        "PU self-training (head ranks pseudo-positives), cut 0.5",
        HeadConfig(ranking="head", cut=CutConfig(rule="fixed"), refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, C=1, cut 0.5",
        HeadConfig(C=1.0, cut=CutConfig(rule="fixed"), refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, C=3, cut 0.5",
        HeadConfig(cut=CutConfig(rule="fixed"), refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, pseudo weight 1",
        HeadConfig(pseudo_weight=1.0, refine_rounds=0, cut=CutConfig(rule="gap", logit=0.25)),
        1000,
    ),
    (
        "PU + k-NN diffusion, cut at logit 0.25",
        HeadConfig(cut=CutConfig(rule="logit", logit=0.25), refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, cut at estimated class size",
        HeadConfig(cut=CutConfig(rule="count"), refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, cut at gap near class size",
        HeadConfig(cut=CutConfig(rule="gap", logit=0.25), refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, pseudo-positives refined once, cut at gap",
        HeadConfig(refine_rounds=1, cut=CutConfig(rule="gap", logit=0.25)),
        1000,
    ),
    (
        "PU + k-NN diffusion, pseudo-positives refined once, cut at logit 0.25",
        HeadConfig(refine_rounds=1, cut=CutConfig(rule="logit", logit=0.25)),
        1000,
    ),
    ("PU + k-NN diffusion, pseudo-positives refined once, cut 0.5 (default)", HeadConfig(), 1000),
    (
        "refined once, size-dependent cut: logit 0.3 - 0.3 ln(n past 0 / 0.037 m)",
        HeadConfig(cut=CutConfig(rule="size-logit", size_slope=0.3)),
        1000,
    ),
    # issue 6, second round: ranking changes (all refined once, cut 0.5 unless named)
    ("k-NN 8", HeadConfig(knn=8), 1000),
    ("affinity exponent 1", HeadConfig(gamma=1.0), 1000),
    (
        "class size from the 2nd-largest held-out rank (quantile 0.75), factor 1",
        HeadConfig(count_quantile=0.75, count_factor=1.0),
        1000,
    ),
    (
        "refinement re-diffuses from examples + the head's top ranks",
        HeadConfig(refine_rediffuse=True),
        1000,
    ),
    ("refinement picks by head logit + ln(diffusion)", HeadConfig(refine_mix=1.0), 1000),
    ("DBA(5) vectors for the k-NN graph, k-NN 10", HeadConfig(dba=5, knn=10), 1000),
    (
        "DBA(5), k-NN 10, cut at logit 0.2",
        HeadConfig(dba=5, knn=10, cut=CutConfig(rule="logit", logit=0.2)),
        1000,
    ),
    (
        "size-dependent cut, slope 0.4: logit 0.3 - 0.4 ln(n past 0 / 0.037 m)",
        HeadConfig(cut=CutConfig(rule="size-logit", size_slope=0.4)),
        1000,
    ),
]


def _trial_logits(X: np.ndarray, labels: list[str], seed: int, trials: int, k: int) -> list[dict]:
    """The default head of every class and trial (``few_shot``'s draws), with its logits over
    the library minus the examples and each example's leave-one-out logit (the head's last fit
    redone without that example, warm started)."""
    import finder.learn.train as heads

    fit, last = heads.fit_weighted, {}

    def spy(*a, **kw):
        last["args"] = a
        return fit(*a, **kw)

    heads.fit_weighted = spy
    y, n, out = np.asarray(labels), len(X), []
    try:
        for ci, name in enumerate(sorted(set(labels))):
            members = np.flatnonzero(y == name)
            for t in range(trials):
                rng = np.random.default_rng([seed, ci, k, t])
                ex = np.sort(rng.choice(members, size=k, replace=False))
                bg = heads.background_indices(n, ex, rng, heads.BACKGROUND_SIZE)
                head = train_variant(X[ex], X[:0], X[bg], seed=seed + t)
                pos, pos_w, neg, neg_w, C = last["args"][:5]  # the final fit: examples first
                loo = []
                for j in range(k):
                    keep = np.setdiff1d(np.arange(len(pos)), [j])
                    w, b = fit(pos[keep], pos_w[keep], neg, neg_w, C, (head.w, head.b))
                    loo.append(float(X[ex[j]] @ w + b))
                rest = np.ones(n, dtype=bool)
                rest[ex] = False
                out.append(
                    {
                        "cls": name,
                        "t": t,
                        "z": head.logits(X[rest]),
                        "truth": y[rest] == name,
                        "zb": np.sort(head.logits(X[bg]))[::-1],
                        "loo": np.asarray(loo),
                        "n_class": int((y[rest] == name).sum()),
                    }
                )
    finally:
        heads.fit_weighted = fit
    return out


def _at_count(zb: np.ndarray, count: float) -> float:
    c = int(min(max(round(count), 1), len(zb) - 1))
    return float((zb[c - 1] + zb[c]) / 2)


def _loo_size(r: dict, q: float) -> float:
    """Class size from the LOO logits as a Gaussian: background past its q-quantile of
    survival, divided by q."""
    from scipy.stats import norm

    mu, sd = r["loo"].mean(), max(r["loo"].std(ddof=1), 0.3)
    return float((r["zb"] >= mu + sd * norm.ppf(1 - q)).sum() / q)


def _loo_mixture_f1(r: dict) -> float:
    """Positive component = Gaussian of the LOO logits, its size fitted from the background
    counts past its quantiles; cut where the expected F1 is largest."""
    from scipy.stats import norm

    zb, loo = r["zb"], r["loo"]
    mu, sd = loo.mean(), max(loo.std(ddof=1), 0.3)
    n_pos = float(np.median([_loo_size(r, q) for q in (0.6, 0.7, 0.8, 0.9)]))
    n0 = max(1, int((zb >= 0).sum()))
    cands = ((zb[:-1] + zb[1:]) / 2)[: 4 * n0 + 10]
    N = np.arange(1, len(cands) + 1)
    tp = np.minimum(n_pos * norm.sf((cands - mu) / sd), N)
    return float(cands[np.argmax(2 * tp / (N + n_pos))])


def _n0(r: dict) -> int:
    return max(1, int((r["zb"] >= 0).sum()))


RECUTS = [
    ("default: logit 0", lambda r: 0.0),
    ("oracle: true class size (not a rule)", lambda r: _at_count(r["zb"], r["n_class"])),
    ("logit 0.3", lambda r: 0.3),
    ("size-logit 0.3 - 0.3 ln(n0 / 0.037 m)", lambda r: 0.3 - 0.3 * np.log(_n0(r) / 19.8)),
    ("count 0.9 n0", lambda r: _at_count(r["zb"], 0.9 * _n0(r))),
    ("count n0^1.1 (about 20)", lambda r: _at_count(r["zb"], 20 * (_n0(r) / 20) ** 1.1)),
    ("LOO Gaussian size, q=0.8", lambda r: _at_count(r["zb"], _loo_size(r, 0.8))),
    ("LOO Gaussian size, q=0.5", lambda r: _at_count(r["zb"], _loo_size(r, 0.5))),
    ("LOO mixture, max expected F1", _loo_mixture_f1),
]


def recut(X: np.ndarray, labels: list[str], flowers: list[str], k: int) -> None:
    """Other cut-offs on the default head's logits (the ranking is the same; only where it
    is cut changes), seeds 0 and 1, 10 and 30 trials."""
    data = {s: _trial_logits(X, labels, s, 30, k) for s in (0, 1)}
    print("| cut-off rule | " + " | ".join(f"s{s} {t}tr fl P/R, cat P/R" for s, t in SETS) + " |")
    print("|---" * (len(SETS) + 1) + "|")
    for name, rule in RECUTS:
        cells = []
        for s, trials in SETS:
            by: dict[str, list] = {}
            for r in data[s]:
                if r["t"] < trials:
                    ret = r["z"] >= rule(r)
                    tp = int((ret & r["truth"]).sum())
                    by.setdefault(r["cls"], []).append(
                        (tp / ret.sum() if ret.sum() else 0.0, tp / r["truth"].sum())
                    )
            m = {c: np.mean(v, axis=0) for c, v in by.items()}
            fl = np.mean([m[c] for c in flowers], axis=0)
            cells.append(f"{fl[0]:.3f}/{fl[1]:.3f}, {m['cat'][0]:.3f}/{m['cat'][1]:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


SETS = [(0, 10), (1, 10), (0, 30), (1, 30)]


def rankers(X: np.ndarray, labels: list[str], flowers: list[str], k: int, seed: int) -> None:
    """Training-time (non-linear) rankings of the library minus the examples, for 10 trials
    of ``few_shot``'s draws: how good a ranking the pseudo-positives could come from. AP and
    R-precision (precision at the true class size). The library is the whole k-NN graph (on
    540 images it is exactly the examples + the background of ``train_head``)."""
    from finder.learn.evaluate import average_precision
    from finder.learn.train import knn_diffusion
    from scripts.heads_variants import augment

    y, n = np.asarray(labels), len(X)
    variants = [
        ("cosine to the examples' mean", None),
        ("diffusion k=5 (the default's)", (X, 5)),
        ("diffusion k=8", (X, 8)),
        ("DBA(5) vectors, diffusion k=10", (augment(X, 5), 10)),
    ]
    print("| ranking | flowers AP / R-prec | cat AP / R-prec | dog AP / R-prec |")
    print("|---|---|---|---|")
    for name, graph in variants:
        by: dict[str, list] = {}
        for ci, cls in enumerate(sorted(set(labels))):
            members = np.flatnonzero(y == cls)
            for t in range(10):
                rng = np.random.default_rng([seed, ci, k, t])
                ex = np.sort(rng.choice(members, size=k, replace=False))
                rest = np.setdiff1d(np.arange(n), ex)
                if graph is None:
                    f = X[rest] @ X[ex].mean(axis=0)
                else:
                    V, knn = graph
                    f = knn_diffusion(np.concatenate([V[ex], V[rest]]), np.arange(k), k=knn)[k:]
                truth = y[rest] == cls
                top = np.argsort(-f, kind="stable")[: truth.sum()]
                by.setdefault(cls, []).append((average_precision(truth, f), truth[top].mean()))
        m = {c: np.mean(v, axis=0) for c, v in by.items()}
        fl = np.mean([m[c] for c in flowers], axis=0)
        cells = [fl, m["cat"], m["dog"]]
        print(f"| {name} | " + " | ".join(f"{a:.3f} / {r:.3f}" for a, r in cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--only", type=int, nargs="*", help="method numbers to run")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--recut", action="store_true", help="compare cut-offs of the default head")
    ap.add_argument("--rankers", action="store_true", help="AP of training-time rankings (no head)")
    ap.add_argument(
        "--features",
        choices=sorted(CACHES),
        default="squash",
        help="squash: the pipeline's embedding; flip / tta4: test-time augmentation (2 / 4 views)",
    )
    args = ap.parse_args()
    paths, X = features(args.features)
    labels = labels_from_paths(paths)
    groups = groups_from_paths(paths)
    flowers = sorted(c for c, g in groups.items() if g == "flowers17")
    if args.recut:
        recut(X, labels, flowers, args.k)
        return
    if args.rankers:
        rankers(X, labels, flowers, args.k, args.seed)
        return
    print(
        f"{len(X)} images, {len(set(labels))} classes, dim {X.shape[1]}, k={args.k}, "
        f"{args.trials} trials, seed {args.seed}, features {args.features}",
        flush=True,
    )
    header = (
        "| # | method | bg | flowers AP | cat AP | cat P / R | flowers P / R "
        "| dog AP | dog P / R | s |"
    )
    print(header)
    print("|---" * 10 + "|")
    out = []
    for i, (name, cfg, bg) in enumerate(METHODS, 1):
        if args.only and i not in args.only:
            continue
        t0 = time.perf_counter()
        r = few_shot(
            X,
            labels,
            ks=(args.k,),
            trials=args.trials,
            seed=args.seed,
            groups=groups,
            trainer=functools.partial(train_variant, config=cfg),
            background_size=bg,
        )
        rows = {row["class"]: row for row in r["rows"]}
        fl = {
            key: float(np.mean([rows[c][key] for c in flowers]))
            for key in ("ap", "precision", "recall")
        }
        cat, dog = rows["cat"], rows["dog"]
        dt = time.perf_counter() - t0
        print(
            f"| {i} | {name} | {bg} | {fl['ap']:.3f} | {cat['ap']:.3f} | "
            f"{cat['precision']:.3f} / {cat['recall']:.3f} | "
            f"{fl['precision']:.3f} / {fl['recall']:.3f} | {dog['ap']:.3f} | "
            f"{dog['precision']:.3f} / {dog['recall']:.3f} | {dt:.0f} |",
            flush=True,
        )
        out.append(
            {
                "method": name,
                "config": cfg.__dict__,
                "background_size": bg,
                "flowers": fl,
                "cat": cat,
                "dog": dog,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
