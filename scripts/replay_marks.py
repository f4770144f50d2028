"""Teach the same marks to other heads: what a part of the method is worth, marks held equal.

``experiment_feedback.py --trace T`` pickles every (class, trial, round) case of a run: the
marks the simulated person gave, the held-out photos. This script trains each case's marks
again, as ``ArrayTeacher`` does, under each ``--set`` of ``HeadConfig`` overrides (one
``--set`` per head; an empty ``--set`` is the default), and prints per case and per round the
held-out F1, best-cut F1 and ECE of every head side by side, then per round the means over the
flower classes and over cat and dog apart (F1, best-cut F1, P, R, ECE); ``negative_weight=W`` in
a ``--set`` weighs that head's explicit ✗ as W background photos (``fit.EXPLICIT_NEGATIVE_WEIGHT``,
not a ``HeadConfig`` field). The marks were chosen by the run's
own heads (strips near their cuts), so this compares heads on one sequence of marks, not whole
runs; it is the quick screen, and a change it favours is then measured whole.

    OMP_NUM_THREADS=1 python scripts/replay_marks.py --library tf --trace T.tf.pkl \
        --rounds 1 5 10 --set --set pseudo_weight=0.0 [--verbose]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn import fit  # noqa: E402
from finder.learn.calibrate import platt  # noqa: E402
from finder.learn.evaluate import labels_from_paths  # noqa: E402
from finder.learn.feedback import ArrayTeacher  # noqa: E402
from finder.learn.metric import SHRINK, library_metric  # noqa: E402
from finder.learn.scores import answer_scores  # noqa: E402
from finder.learn.train import train_head  # noqa: E402
from scripts.experiment_feedback import (  # noqa: E402
    LIBRARIES,
    PETS,
    config_from,
    library_of,
    vectors,
)

NEGATIVE_DEFAULT = fit.EXPLICIT_NEGATIVE_WEIGHT
KEYS = ("f1", "precision", "recall", "ece", "best_f1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default="tf", choices=list(LIBRARIES))
    ap.add_argument("--trace", type=Path, required=True)
    ap.add_argument("--rounds", type=int, nargs="*", help="only these rounds")
    ap.add_argument("--classes", nargs="*", help="only these classes")
    ap.add_argument("--set", nargs="*", action="append", default=[], help="a head: key=value…")
    ap.add_argument("--shrink", type=float, default=SHRINK)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/finder_feedback"))
    ap.add_argument("--verbose", action="store_true", help="the head's size estimates too")
    args = ap.parse_args()
    paths, X = library_of(vectors(args.cache), args.library)
    labels = np.asarray(labels_from_paths(paths))
    metric = library_metric(X, shrink=args.shrink)
    cases = pickle.loads(args.trace.read_bytes())["cases"]
    cases = [
        c
        for c in cases
        if (args.rounds is None or c["round"] in args.rounds)
        and (args.classes is None or c["class"] in args.classes)
    ]
    heads = args.set or [[]]
    got: list[list[dict]] = [[] for _ in heads]
    for c in cases:
        truth, hold = labels == c["class"], c["hold"]
        pos = np.asarray([m[0] for m in c["marks"] if m[1] == 1], dtype=np.int64)
        neg = np.asarray([m[0] for m in c["marks"] if m[1] == 0], dtype=np.int64)
        line = f"{c['class']:10s} t{c['trial']} r{c['round']:2d}"
        for i, settings in enumerate(heads):
            fit.EXPLICIT_NEGATIVE_WEIGHT = negative_weight(settings)
            trainer = partial(train_head, config=config_from(heads_only(settings)))
            head = ArrayTeacher(X, trainer=trainer, metric=metric).learn(
                "x", pos, neg, seed=c["trial"]
            )
            sc = answer_scores(truth[hold], head, X[hold]) | {"round": c["round"]}
            got[i].append(sc)
            line += (
                f" | {sc['f1']:.3f} ({sc['precision']:.2f}/{sc['recall']:.2f})"
                f" best {sc['best_f1']:.3f} ece {sc['ece']:.3f}"
            )
            if args.verbose:
                z = head.logits(X[hold]).astype(np.float64)
                a, _ = platt(z, truth[hold].astype(np.float64))
                p = head.params
                line += (
                    f" size {p.get('n_class_estimate', 0):.0f} (marks"
                    f" {p.get('n_class_marks', 0):.0f}, count {p.get('n_class_count', 0):.0f})"
                    f" calibration {np.round(p.get('calibration', []), 2).tolist()}"
                    f" slope × {a:.2f} to fit the held-out truth"
                )
        print(line, flush=True)
    rounds = sorted({c["round"] for c in cases})
    groups = {"flowers": [c["class"] not in PETS for c in cases]}
    groups |= {"cat, dog": [c["class"] in PETS for c in cases]}
    print("\nper round, means over the cases: F1 | best-cut F1 | P | R | ECE")
    print("rounds: " + " ".join(str(r) for r in rounds))
    for group, where in groups.items():
        if not any(where):
            continue
        print(group)
        for settings, rows in zip(heads, got, strict=True):
            parts = []
            for key in ("f1", "best_f1", "precision", "recall", "ece"):
                parts.append(" ".join(f"{mean(rows, where, key, r):.3f}" for r in rounds))
            print(f"  {' '.join(settings) or 'default':48s} " + " | ".join(parts), flush=True)


def mean(rows: list[dict], where: list[bool], key: str, r: int) -> float:
    got = [x[key] for x, w in zip(rows, where, strict=True) if w and x["round"] == r]
    return float(np.mean(got))


NEGATIVE = "negative_weight"
"""Not a ``HeadConfig`` field: ``negative_weight=W`` sets ``fit.EXPLICIT_NEGATIVE_WEIGHT`` for the
head (the weight of an explicit ✗, in background photos)."""


def negative_weight(settings: list[str]) -> float:
    got = [float(s.partition("=")[2]) for s in settings if s.startswith(NEGATIVE + "=")]
    return got[-1] if got else NEGATIVE_DEFAULT


def heads_only(settings: list[str]) -> list[str]:
    return [s for s in settings if not s.startswith(NEGATIVE + "=")]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
