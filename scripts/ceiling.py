"""What the vectors allow: a linear head given labels chosen at random, cut at its best (an oracle).

Issue 12 asks for answers after 5 examples and 20 clicks; this prints how far a linear head on the
same vectors, in the same metric, gets when it is *given* more than that: ``P`` positives and
``N`` negatives drawn at random and labelled (no clicks, no pseudo-labels), or ``P`` positives
against an unlabelled random background of 2,000 (``bg``), or half of the library labelled (the
issue's own "ceiling of these features"). It is scored on every photo it was not given: AP, and
the F1 of its best cut (:func:`finder.learn.feedback.best_f1`, an oracle: no rule can do better
with that ranking). The libraries are those of ``scripts/experiment_feedback.py``.

    OMP_NUM_THREADS=1 python scripts/ceiling.py [--trials 5] [--libraries photos tf both]

Prints a table (library, labels; flowers mean AP / best-cut F1; cat; dog), then, per label
budget, the worst library's flowers and pets figures; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from experiment_feedback import LIBRARIES, PETS, vectors  # noqa: E402

from finder.learn.evaluate import average_precision, labels_from_paths  # noqa: E402
from finder.learn.metric import library_metric  # noqa: E402
from finder.learn.scores import best_f1  # noqa: E402
from finder.learn.train import BACKGROUND_SIZE, fit_weighted  # noqa: E402

BUDGETS = ("5+bg", "25+bg", "25+25", "25+100", "25+400", "50+200", "half")
"""Labels given: ``P+N`` random positives and negatives, ``P+bg`` random positives against the
unlabelled background, ``half`` half the library labelled."""


def draw(
    budget: str, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Positions of the positives, of the negatives (labelled, or the background), and of the
    photos given labelled (left out of the scoring); None when the class is too small for the
    budget (10 of it must be left to score)."""
    members, others = np.flatnonzero(y), np.flatnonzero(~y)
    if budget == "half":
        pos = rng.choice(members, size=len(members) // 2, replace=False)
        neg = rng.choice(others, size=len(others) // 2, replace=False)
        return pos, neg, np.union1d(pos, neg)
    p, n = budget.split("+")
    if len(members) < int(p) + 10:
        return None
    pos = rng.choice(members, size=int(p), replace=False)
    if n == "bg":  # unlabelled: scored like every photo not given
        pool = np.setdiff1d(np.arange(len(y)), pos)
        return pos, rng.choice(pool, size=min(BACKGROUND_SIZE, len(pool)), replace=False), pos
    neg = rng.choice(others, size=int(n), replace=False)
    return pos, neg, np.union1d(pos, neg)


def scores(Y: np.ndarray, y: np.ndarray, budget: str, trials: int, seed: int) -> dict | None:
    """Mean AP and best-cut F1 over ``trials`` draws, on the photos not given."""
    ap, f1 = [], []
    for t in range(trials):
        rng = np.random.default_rng([seed, t, int(y.sum())])
        got = draw(budget, y, rng)
        if got is None:
            return None
        pos, neg, given = got
        w, b = fit_weighted(Y[pos], np.ones(len(pos)), Y[neg], np.ones(len(neg)), 1.0)
        rest = np.setdiff1d(np.arange(len(y)), given)
        z = Y[rest] @ w + b
        ap.append(average_precision(y[rest], z))
        f1.append(best_f1(y[rest], z))
    return {"ap": float(np.mean(ap)), "best_f1": float(np.mean(f1))}


def fmt(c: dict | None) -> str:
    return f"{c['ap']:.3f} / {c['best_f1']:.3f}" if c else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--libraries", nargs="*", default=list(LIBRARIES), choices=list(LIBRARIES))
    ap.add_argument("--budgets", nargs="*", default=list(BUDGETS))
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/finder_feedback"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = vectors(args.cache)
    report: dict = {}
    print("| library | labels given | flowers AP / best-cut F1 | cat | dog |")
    print("|---|---|---|---|---|")
    for lib in args.libraries:
        paths = sum((sets[s][0] for s in LIBRARIES[lib]), [])
        X = np.concatenate([sets[s][1] for s in LIBRARIES[lib]])
        Y = library_metric(X).apply(X)  # the metric finder's heads learn in
        labels = np.asarray(labels_from_paths(paths))
        names = sorted(set(labels.tolist()))
        for budget in args.budgets:
            per = {c: scores(Y, labels == c, budget, args.trials, args.seed) for c in names}
            flowers = [v for c, v in per.items() if c not in PETS and v is not None]
            cell: dict = {}
            if flowers:
                cell["flowers"] = {
                    key: float(np.mean([v[key] for v in flowers])) for key in ("ap", "best_f1")
                } | {"n": len(flowers)}
            cell |= {c: per[c] for c in PETS if per.get(c) is not None}
            report.setdefault(lib, {})[budget] = cell
            print(
                f"| {lib} ({len(X)}) | {budget} | {fmt(cell.get('flowers'))} | "
                f"{fmt(cell.get('cat'))} | {fmt(cell.get('dog'))} |",
                flush=True,
            )
    print("\nworst library per budget (best-cut F1):")
    for budget in args.budgets:
        parts = []
        for group in ("flowers", *PETS):
            got = [
                (cells[budget][group]["best_f1"], lib)
                for lib, cells in report.items()
                if group in cells.get(budget, {})
            ]
            if got:
                f, lib = min(got)
                parts.append(f"{group} {f:.3f} ({lib})")
        print(f"  {budget}: " + ", ".join(parts))
    print(json.dumps({"trials": args.trials, "seed": args.seed, "libraries": report}))


if __name__ == "__main__":
    main()
