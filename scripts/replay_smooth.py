"""The answer near the cut re-ranked by its neighbours (finder.learn.smooth), replayed on the
traces of ``experiment_feedback.py --trace T``: the same marks and heads, the held-out answer
scored as the head gives it and as smoothed. Smoothing changes no label a run gives (the strips
are chosen by the head), so a replay is the whole run's figure.

    OMP_NUM_THREADS=1 python scripts/replay_smooth.py --library tf --trace T.tf.pkl
        [--rounds 1 5 10] [--set k=10 weight=3 width=2 ...]

Prints per group (flowers: every class but cat and dog; cat; dog) and round: the mean F1 and
best-cut F1 and precision / recall without, then each setting's mean F1, its change (± its
standard error over the (class, trial) cases, paired), best-cut F1 and precision / recall.
"""

from __future__ import annotations

import argparse
import ast
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.scores import best_f1, precision_recall  # noqa: E402
from finder.learn.smooth import Smooth, smooth_rows  # noqa: E402
from scripts.experiment_feedback import LIBRARIES, PETS, library_of, vectors  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", required=True, choices=list(LIBRARIES))
    ap.add_argument("--trace", type=Path, required=True)
    ap.add_argument("--rounds", type=int, nargs="*", default=[1, 5, 10])
    ap.add_argument(
        "--set", nargs="*", action="append", help="a Smooth setting, key=value ... (repeatable)"
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/finder_feedback"))
    args = ap.parse_args()
    settings = [
        Smooth(**{k: ast.literal_eval(v) for k, _, v in (i.partition("=") for i in group)})
        for group in (args.set or [[]])
    ]
    _, X = library_of(vectors(args.cache), args.library)
    with open(args.trace, "rb") as f:
        trace = pickle.load(f)
    labels = np.asarray(trace["labels"])
    cells: dict = {}
    for case in trace["cases"]:
        if case["round"] not in args.rounds:
            continue
        group = case["class"] if case["class"] in PETS else "flowers"
        truth = labels == case["class"]
        rows = np.flatnonzero(case["hold"])
        z = case["z"].astype(np.float64)
        marks = {i: lab for i, lab, *_ in case["marks"]}
        cell = cells.setdefault((group, case["round"]), {"f1": [], "pr": [], "best": [], "by": {}})
        p, r, f = precision_recall(truth[rows], z[rows] >= case["cut"])
        cell["f1"].append(f)
        cell["pr"].append((p, r))
        cell["best"].append(best_f1(truth[rows], z[rows]))
        for s in settings:
            zs = smooth_rows(z, case["cut"], X, rows, marks, softened=case["softened"], config=s)
            got = cell["by"].setdefault(s, ([], [], []))
            p, r, f = precision_recall(truth[rows], zs >= case["cut"])
            got[0].append(f)
            got[1].append(best_f1(truth[rows], zs))
            got[2].append((p, r))
    for (group, r), cell in sorted(cells.items()):
        f1 = np.asarray(cell["f1"])
        p, rc = np.mean(cell["pr"], axis=0)
        print(
            f"{args.library} {group} round {r} ({len(f1)} cases): F1 {f1.mean():.3f} "
            f"(best cut {np.mean(cell['best']):.3f}; P / R {p:.2f} / {rc:.2f})"
        )
        for s, (g, b, pr) in cell["by"].items():
            d = np.asarray(g) - f1
            p, rc = np.mean(pr, axis=0)
            print(
                f"  k={s.k} weight={s.weight} width={s.width} temperature={s.temperature}: "
                f"{np.mean(g):.3f} ({d.mean():+.4f} ±{d.std() / np.sqrt(len(d)):.4f}), "
                f"best cut {np.mean(b):.3f}; P / R {p:.2f} / {rc:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
