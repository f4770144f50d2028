"""Few-shot heads under feedback on the three shared libraries: the figures of docs/heads.md.

The libraries: ../shared/photos (540), ../shared/tf_flowers (4,064) and both as one library
(4,604; a species in both sets is one class: its label is its folder's name). Vectors: the shared
TFLite MobileNet, one view, embedded once by ``Library.index`` into a library under /tmp
(``--cache``) and kept as .npz. The protocol is ``finder.learn.feedback.feedback`` (what
``finder eval --feedback`` runs, here with an in-memory teacher that learns as
``Library.learn`` does): k=5 random examples, then rounds of clicks, marked photos left out.

    OMP_NUM_THREADS=1 python scripts/experiment_feedback.py [--libraries photos tf both]
        [--method default] [--trials 10] [--rounds 2] [--clicks 10] [--shown top|review]
        [--smooth key=value ...] [--no-smooth]

The answer scored is re-ranked near its cut by its neighbours (finder.learn.smooth, as
``finder eval``); ``--no-smooth`` scores the head's own; the head's figures are printed beside
(``[head F1 / best-cut F1, ECE]``).

Prints, per library and round: flowers (every class but cat and dog) mean AP, P / R, F1, ECE;
cat and dog the same; the last line is JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.evaluate import groups_from_paths, labels_from_paths  # noqa: E402
from finder.learn.feedback import ArrayTeacher, feedback  # noqa: E402
from finder.learn.metric import SHRINK, library_metric  # noqa: E402
from finder.learn.smooth import Smooth  # noqa: E402
from finder.learn.strip import StripPlan  # noqa: E402
from finder.learn.train import BACKGROUND_SIZE, HeadConfig, train_head  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
SETS = {"photos": SHARED / "photos", "tf": SHARED / "tf_flowers"}
LIBRARIES = {
    "photos": ["photos"],
    "tf": ["tf"],
    "both": ["photos", "tf"],
    "fine": ["tf"],
    "flowers17": ["photos"],
}
FINE = 200
"""The fine-grained check (``fine``): five flower species, 200 photos of each (drawn once, seed
0, from ../shared/tf_flowers): one kind of thing, classes that look alike, the size of a
person's few breeds of one animal."""
PETS = ("cat", "dog")


def library_of(sets: dict, lib: str) -> tuple[list[str], np.ndarray]:
    """Paths and vectors of one of :data:`LIBRARIES`."""
    paths = sum((sets[s][0] for s in LIBRARIES[lib]), [])
    X = np.concatenate([sets[s][1] for s in LIBRARIES[lib]])
    keep = None
    if lib == "flowers17":
        keep = np.asarray(["/flowers17/" in p for p in paths])
    if lib == "fine":
        labels = np.asarray(labels_from_paths(paths))
        rng = np.random.default_rng(0)
        keep = np.zeros(len(paths), dtype=bool)
        for c in np.unique(labels):
            keep[rng.choice(np.flatnonzero(labels == c), size=FINE, replace=False)] = True
    if keep is not None:
        paths, X = [p for p, k in zip(paths, keep, strict=True) if k], X[keep]
    return paths, X


def vectors(cache: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """Paths and vectors of each shared set, embedded once into a library under ``cache``."""
    out = {}
    missing = [s for s in SETS if not (cache / f"{s}.npz").exists()]
    if missing:
        from finder.library import BackboneChoice, Library

        with Library(cache / "lib", backbone=BackboneChoice(model=str(MODEL))) as lib:
            lib.index([str(SETS[s]) for s in SETS])
            for s in SETS:
                paths, X = lib.vectors_under(str(SETS[s]))
                np.savez(cache / f"{s}.npz", paths=np.array(paths), X=X)
    for s in SETS:
        data = np.load(cache / f"{s}.npz")
        out[s] = ([str(p) for p in data["paths"]], data["X"])
    return out


def issue6(positives, negatives, background, *, seed=0, **_):
    """The method before issue 12: PU + diffusion, no calibration, the size cut of slope 0.4;
    it does not look at the previous head."""
    from finder.learn.cutoff import CutConfig
    from scripts.heads_variants import VariantConfig, train_variant

    cfg = VariantConfig(cut=CutConfig(rule="size-logit", size_slope=0.4))
    return train_variant(positives, negatives, background, seed=seed, config=cfg)


METHODS = {"default": train_head, "issue6": issue6}


def config_from(settings: list[str]) -> HeadConfig:
    """``HeadConfig()`` with ``key=value`` overrides (values parsed as Python literals);
    ``cut.key=value`` sets a field of its ``CutConfig``."""
    import ast

    changes: dict = {}
    cut: dict = {}
    for item in settings:
        key, _, value = item.partition("=")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        if key.startswith("cut."):
            cut[key[4:]] = parsed
        else:
            changes[key] = parsed
    cfg = replace(HeadConfig(), **changes)
    return replace(cfg, cut=replace(cfg.cut, **cut)) if cut else cfg


def summary(result: dict) -> list[dict]:
    """Per round: flowers (means over the classes that are not pets) and each pet class, the
    median actions per strip, and the estimate's record over every class."""
    from finder.learn.feedback_means import pooled_estimates

    out = []
    rows = result["rows"]
    keys = ("ap", "precision", "recall", "f1", "ece", "best_f1", "f1_head", "best_f1_head")
    keys += ("ece_head", "precision_head", "recall_head")
    for r in range(result["rounds"] + 1):
        at = [row for row in rows if row["round"] == r and row["scored"]]
        if not at:
            continue
        flowers = [row for row in at if row["class"] not in PETS]
        cell: dict = {"round": r, "labels": float(np.mean([row["labels"] for row in at]))}
        if flowers:
            cell["flowers"] = {key: float(np.mean([row[key] for row in flowers])) for key in keys}
            cell["flowers"]["n"] = len(flowers)
            cell["flowers_estimate"] = pooled_estimates(flowers)
        for row in at:
            if row["class"] in PETS:
                cell[row["class"]] = {key: row[key] for key in keys}
        cell |= pooled_estimates(at)
        out.append(cell)
    return out


def fmt(c: dict | None) -> str:
    if not c:
        return "|"
    pr = f"({c['precision']:.2f} / {c['recall']:.2f})"
    head = f" [head {c['f1_head']:.3f} / {c['best_f1_head']:.3f}, ECE {c['ece_head']:.3f}]"
    return f"{c['f1']:.3f} / {c['best_f1']:.3f} {pr}{head} | {c['ece']:.3f}"


def share(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--libraries", nargs="*", default=["photos", "tf", "both", "fine"], choices=list(LIBRARIES)
    )
    ap.add_argument("--method", default="default", choices=sorted(METHODS))
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--shown", default="review", choices=["top", "review"])
    ap.add_argument("--holdout", type=float, default=0.3)
    ap.add_argument("--drawn", type=int, help="photos of a strip drawn at random")
    ap.add_argument("--floor", type=float, help="the draws' usefulness floor")
    ap.add_argument(
        "--plan",
        nargs="*",
        default=[],
        help="StripPlan overrides, key=value (window, offset, typical: which photos are chosen)",
    )
    ap.add_argument(
        "--smooth",
        nargs="*",
        help="Smooth overrides key=value of the answer re-ranked near the cut by its "
        "neighbours (finder.learn.smooth; on by default)",
    )
    ap.add_argument(
        "--no-smooth", action="store_true", help="score the head's own answer (no re-rank)"
    )
    ap.add_argument("--classes", nargs="*", help="only these classes")
    ap.add_argument("--set", nargs="*", default=[], help="HeadConfig overrides, key=value")
    ap.add_argument(
        "--background", type=int, help=f"background sample size (default {BACKGROUND_SIZE})"
    )
    ap.add_argument(
        "--shrink",
        type=float,
        default=SHRINK,
        help=f"the shrinkage of the library's metric (finder.learn.metric; default {SHRINK})",
    )
    ap.add_argument(
        "--no-metric", action="store_true", help="learn on the stored vectors, without the metric"
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/finder_feedback"))
    ap.add_argument("--out", type=Path, help="also write the full results (JSON) here")
    ap.add_argument("--trace", type=Path, help="pickle every case (marks, logits) here")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = vectors(args.cache)
    trainer = METHODS[args.method]
    if args.set:
        trainer = partial(train_head, config=config_from(args.set))
    plan = StripPlan()
    if args.drawn is not None:
        plan = replace(plan, drawn=args.drawn)
    if args.floor is not None:
        plan = replace(plan, floor=args.floor)
    if args.plan:
        plan = replace(plan, **{k: float(v) for k, _, v in (i.partition("=") for i in args.plan)})
    smooth = None
    if not args.no_smooth:
        smooth = Smooth(
            **{k: ast.literal_eval(v) for k, _, v in (i.partition("=") for i in args.smooth or [])}
        )
    report, full = {}, {}
    print(
        f"method {args.method}, k={args.k}, {args.trials} trials, seed {args.seed}, "
        f"{args.rounds} rounds of {args.clicks} ({args.shown}, {plan.drawn} drawn), "
        f"held out {args.holdout} {' '.join(args.set)} {' '.join(args.plan)} "
        f"{'' if smooth is None else smooth}"
    )
    print(
        "| library | labels | flowers F1 / best (P / R) | ECE | cat | ECE | dog | ECE "
        "| actions | P held | R held | ±P | ±R | s |"
    )
    print("|---" * 14 + "|")
    for lib in args.libraries:
        paths, X = library_of(sets, lib)
        t0 = time.perf_counter()
        trace: list | None = [] if args.trace else None
        metric = None if args.no_metric else library_metric(X, shrink=args.shrink)
        result = feedback(
            X,
            labels_from_paths(paths),
            ArrayTeacher(X, trainer=trainer, background_size=args.background, metric=metric),
            k=args.k,
            rounds=args.rounds,
            clicks=args.clicks,
            shown=args.shown,
            trials=args.trials,
            seed=args.seed,
            groups=groups_from_paths(paths),
            classes=args.classes,
            holdout=args.holdout,
            plan=plan,
            trace=trace,
            smooth=smooth,
        )
        if args.trace:
            import pickle

            with open(f"{args.trace}.{lib}.pkl", "wb") as f:
                pickle.dump({"labels": labels_from_paths(paths), "cases": trace}, f)
        dt = time.perf_counter() - t0
        full[lib] = result
        report[lib] = summary(result)
        for cell in report[lib]:
            print(
                f"| {lib} ({len(X)}) | {cell['labels']:.0f} | {fmt(cell.get('flowers'))} | "
                f"{fmt(cell.get('cat'))} | {fmt(cell.get('dog'))} | "
                f"{share(cell['actions_median'])} | {share(cell['precision_coverage'])} | "
                f"{share(cell['recall_coverage'])} | {share(cell['precision_halfwidth_median'])} "
                f"| {share(cell['recall_halfwidth_median'])} | {dt:.0f} |",
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps(full))
    print(
        json.dumps(
            {"method": args.method, "set": args.set, "shown": args.shown, "libraries": report}
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
