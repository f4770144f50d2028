"""Reproduce the comparison of head-training methods in docs/heads.md.

Features: the shared TFLite MobileNet v1 embedding of every photo under ../shared/photos
(flowers17 and pets, 540 images), L2-normalised, cached in /tmp/finder_feats.npz (computed here
with ``tf.lite.Interpreter`` when missing: RGB squashed to 224x224 with Pillow BILINEAR, no crop,
uint8 output dequantised with the interpreter's own scale and zero point).

Protocol: ``finder.evaluate.few_shot`` over all 540 images as one library, k=5 examples, 10 trials
(seed 0), per method: flowers mean AP, cat AP, and precision/recall of the default output (no
flags) for cat and averaged over the 17 flowers.

    OMP_NUM_THREADS=1 python scripts/experiment_heads.py [--trials 10] [--json out.json]
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

from finder.evaluate import few_shot, groups_from_paths, labels_from_paths  # noqa: E402
from finder.heads import DEFAULT_CONFIG, PLAIN_CONFIG, HeadConfig, train_head  # noqa: E402

SHARED = ROOT.parent / "shared"
PHOTOS = SHARED / "photos"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
CACHE = Path("/tmp/finder_feats.npz")


def features() -> tuple[list[str], np.ndarray]:
    if CACHE.exists():
        data = np.load(CACHE)
        return [str(p) for p in data["paths"]], data["X"]
    if not PHOTOS.is_dir() or not MODEL.is_file():
        sys.exit(f"need {PHOTOS} and {MODEL}")
    import tensorflow as tf
    from PIL import Image

    paths = sorted(str(p) for p in PHOTOS.glob("*/*/*.jpg"))
    interp = tf.lite.Interpreter(model_path=str(MODEL))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = out["quantization"]
    rows = []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.uint8)
        interp.set_tensor(inp["index"], a[None])
        interp.invoke()
        rows.append((interp.get_tensor(out["index"]).reshape(-1).astype(np.float32) - zero) * scale)
    X = np.stack(rows)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = labels_from_paths(paths)
    np.savez(CACHE, paths=np.array(paths), labels=np.array(labels), X=X)
    return paths, X


METHODS: list[tuple[str, HeadConfig, int]] = [
    ("plain C=1, 300 background, cut 0.5 (the issue's baseline)", PLAIN_CONFIG, 300),
    ("plain C=1, 1000 background, cut 0.5", PLAIN_CONFIG, 1000),
    ("plain C=0.3", HeadConfig(method="plain", C=0.3, threshold="fixed"), 1000),
    ("plain C=3", HeadConfig(method="plain", C=3.0, threshold="fixed"), 1000),
    ("plain C=1, unbalanced weights", HeadConfig(method="plain", C=1.0, balanced=False), 1000),
    ("plain C=1, standardised features", HeadConfig(method="plain", C=1.0, standardize=True), 1000),
    (
        "PU self-training (head ranks pseudo-positives), cut 0.5",
        HeadConfig(ranking="head", threshold="fixed", refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, C=1, cut 0.5",
        HeadConfig(C=1.0, threshold="fixed", refine_rounds=0),
        1000,
    ),
    ("PU + k-NN diffusion, C=3, cut 0.5", HeadConfig(threshold="fixed", refine_rounds=0), 1000),
    (
        "PU + k-NN diffusion, pseudo weight 1",
        HeadConfig(pseudo_weight=1.0, refine_rounds=0, threshold="gap", threshold_logit=0.25),
        1000,
    ),
    (
        "PU + k-NN diffusion, cut at logit 0.25",
        HeadConfig(threshold="logit", threshold_logit=0.25, refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, cut at estimated class size",
        HeadConfig(threshold="count", refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, cut at gap near class size",
        HeadConfig(threshold="gap", threshold_logit=0.25, refine_rounds=0),
        1000,
    ),
    (
        "PU + k-NN diffusion, pseudo-positives refined once, cut at gap",
        HeadConfig(refine_rounds=1, threshold="gap", threshold_logit=0.25),
        1000,
    ),
    (
        "PU + k-NN diffusion, pseudo-positives refined once, cut at logit 0.25",
        HeadConfig(refine_rounds=1, threshold="logit", threshold_logit=0.25),
        1000,
    ),
    ("PU + k-NN diffusion, pseudo-positives refined once, cut 0.5 (default)", DEFAULT_CONFIG, 1000),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--only", type=int, nargs="*", help="method numbers to run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    paths, X = features()
    labels = labels_from_paths(paths)
    groups = groups_from_paths(paths)
    flowers = sorted(c for c, g in groups.items() if g == "flowers17")
    print(
        f"{len(X)} images, {len(set(labels))} classes, dim {X.shape[1]}, k={args.k}, "
        f"{args.trials} trials, seed {args.seed}",
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
            trainer=functools.partial(train_head, config=cfg),
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
