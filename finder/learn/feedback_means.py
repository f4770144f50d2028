"""What a feedback run (:func:`finder.learn.feedback.feedback`) says in sum: one class's trials
of a round (:func:`trial_estimates`: how the estimate did), the means over classes per group
and round (:func:`feedback_means`), and the actions and the estimate's record over classes
(:func:`pooled_estimates`). numpy only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from finder.learn.scores import METRICS

HEAD_KEYS = ("precision", "recall", "f1", "ece", "best_f1")
"""The head's own answer's figures, beside the smoothed answer's (``f1_head`` …)."""
FIGURES = (*METRICS, *(f"{key}_head" for key in HEAD_KEYS))
"""Every figure a round's means are taken of: the answer's and the head's own."""


def trial_estimates(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How the estimate did over the trials of one class and round: how many trials had one
    (``estimates``), in how many its precision and recall range held the truth, their mean
    half-widths, and the mean estimate beside the mean truth."""
    got = [c for c in cases if c.get("estimate")]
    out: dict[str, Any] = {
        "trials_scored": len(cases),
        "estimates": len(got),
        "true_precision": float(np.mean([c["true_precision"] for c in cases])),
        "true_recall": float(np.mean([c["true_recall"] for c in cases])),
    }
    for key in ("precision", "recall"):
        lo_hi = [c["estimate"][f"{key}_range"] for c in got]
        truth = [c[f"true_{key}"] for c in got]
        out[f"{key}_covered"] = int(
            sum(lo - 1e-9 <= t <= hi + 1e-9 for (lo, hi), t in zip(lo_hi, truth, strict=True))
        )
        out[f"{key}_halfwidths"] = [(hi - lo) / 2 for lo, hi in lo_hi]
        out[f"estimated_{key}"] = float(np.mean([c["estimate"][key] for c in got])) if got else None
    return out


def feedback_means(rows: Sequence[Mapping[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """Means over classes per group (``all`` and each group) and round. Round 0 is over every
    class; ``"after clicks"`` rows (``set == "clicked"``) are over the classes scored in every
    round, round 0 included, so that rounds compare like with like. Actions: the median over
    every strip of the round; the estimate: the share of (class, trial) cases whose range held
    the truth, and the median and largest half-width of the ranges."""
    out = []
    groups = ["all"] + sorted({r["group"] for r in rows if r["group"]})
    for g in groups:
        sel = [r for r in rows if g == "all" or r["group"] == g]
        clicked = {r["class"] for r in sel if r["round"] == rounds and r["scored"]}
        for r in range(rounds + 1):
            sets = [("all", None)] if r == 0 else []
            if rounds > 0:
                sets.append(("clicked", clicked))
            for set_name, keep in sets:
                part = [
                    row
                    for row in sel
                    if row["round"] == r and (keep is None or row["class"] in keep)
                ]
                if not part:
                    continue
                out.append(
                    {
                        "group": g,
                        "round": r,
                        "set": set_name,
                        "n_classes": len(part),
                        "labels": float(np.mean([row["labels"] for row in part])),
                        **{key: float(np.mean([row[key] for row in part])) for key in FIGURES},
                        **pooled_estimates(part),
                    }
                )
    return out


def pooled_estimates(part: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Actions and the estimate's record over rows (classes) of one round."""
    actions = [a for row in part for a in row.get("actions", [])]
    n = sum(row.get("estimates", 0) for row in part)
    out: dict[str, Any] = {
        "actions_median": float(np.median(actions)) if actions else None,
        "estimates": n,
        "cases": sum(row.get("trials_scored", 0) for row in part),
    }
    for key in ("precision", "recall"):
        half = [h for row in part for h in row.get(f"{key}_halfwidths", [])]
        covered = sum(row.get(f"{key}_covered", 0) for row in part)
        out[f"{key}_coverage"] = covered / n if n else None
        out[f"{key}_halfwidth_median"] = float(np.median(half)) if half else None
        out[f"{key}_halfwidth_max"] = float(np.max(half)) if half else None
    return out
