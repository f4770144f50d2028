"""Where a cut could sit: what the ranking of each traced answer allows, round by round.

``scripts/experiment_feedback.py --trace T`` pickles every (class, trial, round) case: the
head's logits over the library, its cut, the held-out photos, the marks. This reads those
pickles back and prints, per library and round, over the flower classes (every class but cat
and dog, as experiment_feedback's "flowers"; ``--classes`` names others, cat and dog included),
scored on the held-out photos as there:

- ``P / R``: precision and recall at the head's own cut (what the answer is);
- ``best F1``: the F1 of the best cut, chosen knowing the labels (the ranking's ceiling);
- ``R at P>=X``: the most recall any cut gives at precision at least ``--precision`` X (0 when
  none reaches it), and ``reach``: the share of cases where some cut gives precision >= X and
  recall >= ``--recall`` (issue 23's bar at 0 labels: P >= 0.80, R >= 0.65);
- ``P at R>=Y``: the most precision any cut gives at recall at least Y.

    python scripts/trace_cuts.py T.tf.pkl [more.pkl ...] [--rounds 0 1 5 10]
        [--precision 0.8] [--recall 0.65] [--classes daisy dandelion rose sunflower tulip]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.scores import best_f1, precision_recall  # noqa: E402

PETS = ("cat", "dog")


def curve(truth: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of every cut of the ranking ``z`` (the top 1, 2, ... photos)."""
    order = np.argsort(-z, kind="stable")
    hits = np.cumsum(truth[order])
    taken = np.arange(1, len(z) + 1)
    return hits / taken, hits / max(int(truth.sum()), 1)


def case_figures(truth: np.ndarray, z: np.ndarray, cut: float, p0: float, r0: float) -> dict:
    p, r, f1 = precision_recall(truth, z >= np.float32(cut))
    prec, rec = curve(truth, z)
    at_p = rec[prec >= p0]
    at_r = prec[rec >= r0]
    return {
        "precision": p,
        "recall": r,
        "f1": f1,
        "best_f1": best_f1(truth, z),
        "recall_at_p": float(at_p.max()) if len(at_p) else 0.0,
        "precision_at_r": float(at_r.max()) if len(at_r) else 0.0,
        "reach": bool(((prec >= p0) & (rec >= r0)).any()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+", type=Path)
    ap.add_argument("--rounds", nargs="*", type=int)
    ap.add_argument("--precision", type=float, default=0.80)
    ap.add_argument("--recall", type=float, default=0.65)
    ap.add_argument("--classes", nargs="*", help="only these classes (e.g. tf's five in both)")
    args = ap.parse_args()
    report: dict = {}
    print(
        f"| library | round | cases | P / R at the cut | F1 | best F1 | R at P>={args.precision} "
        f"| P at R>={args.recall} | reach |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.traces:
        with open(path, "rb") as f:
            data = pickle.load(f)
        labels = np.asarray(data["labels"])
        lib = path.name.rsplit(".", 2)[-2] if path.name.count(".") >= 2 else path.stem
        by_round: dict[int, list[dict]] = {}
        for case in data["cases"]:
            if args.rounds and case["round"] not in args.rounds:
                continue
            if case["class"] not in args.classes if args.classes else case["class"] in PETS:
                continue
            hold = np.asarray(case["hold"], dtype=bool)
            truth = labels[hold] == case["class"]
            z = np.asarray(case["z"])[hold]
            by_round.setdefault(case["round"], []).append(
                case_figures(truth, z, case["cut"], args.precision, args.recall)
            )
        report[lib] = {}
        for r in sorted(by_round):
            cases = by_round[r]
            mean = {k: float(np.mean([c[k] for c in cases])) for k in cases[0]}
            report[lib][r] = mean | {"cases": len(cases)}
            print(
                f"| {lib} | {r} | {len(cases)} | {mean['precision']:.3f} / {mean['recall']:.3f} "
                f"| {mean['f1']:.3f} | {mean['best_f1']:.3f} | {mean['recall_at_p']:.3f} "
                f"| {mean['precision_at_r']:.3f} | {mean['reach']:.2f} |"
            )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
