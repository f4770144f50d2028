"""How far the combined library's 10% filed can get (issue 25): per class, the product's answer,
its heads at an oracle cut, and linear heads given labels the product never has.

Read from ``scripts/filed_replay.py record``'s stored cases (``--pattern`` the combined 10%
ones, one per seed). The unsorted photos are dealt into two halves; a head is trained on one,
scored on the other, and the halves swapped (each photo scored once, by a head that did not
see it); the F1 is that of the best cut of each half's ranking (an oracle), the mean of the
two halves. Per class:

- ``answer``: the product's suggestions (``Filing.suggest``, as replayed), F1;
- ``best cut``: the product's head at the best cut of its ranking (an oracle cut);
- ``10% +negatives``: a logistic head (``learn.joint.fit_softmax``, two classes weighing the
  same, the library's metric) on the class's filed photos (10%) against *every* photo not of
  it that it is given: the other classes' filed photos and the training half's unsorted ones,
  labelled: what 10% of examples allow when nothing is unknown but the class's own members;
- ``every label``: the same head given the training half's members of the class too (the
  vectors' ceiling at half the library labelled).

Prints a table (mean over seeds, per class and the mean), the last line JSON; ``--figure
PATH`` draws it (matplotlib).

    python scripts/filed_ceiling.py --store DIR [--pattern 's[012]-both-10-folders.pkl']
        [--figure docs/filed_10_ceiling.png]
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

from finder.learn.head import Head  # noqa: E402
from finder.learn.joint import fit_softmax  # noqa: E402
from scripts.filed_replay import answer_all  # noqa: E402

C = 10.0
"""The oracle heads' inverse regularisation (``fit_softmax``'s, each side weighing the same)."""


def best_f1(z: np.ndarray, truth: np.ndarray) -> float:
    """The F1 of the best cut of ranking ``z`` (an oracle)."""
    n = int(truth.sum())
    if n == 0:
        return float("nan")
    hits = np.cumsum(truth[np.argsort(-z, kind="stable")])
    return float((2 * hits / (np.arange(1, len(hits) + 1) + n)).max())


def oracle(rec: dict, c: str, halves: np.ndarray, with_members: bool) -> float:
    """A head given labels (see the module docstring), best-cut F1 on the held-out halves."""
    metric = rec["metric"]
    X = metric.apply(rec["X"])
    truth = rec["truth"][c]
    pos = metric.apply(rec["inputs"][c]["positives"])
    others = [metric.apply(rec["joint_vectors"][o]) for o in rec["classes"] if o != c]
    out = []
    for h in (0, 1):
        train, test = halves != h, halves == h
        neg = np.concatenate([*others, X[train & ~truth]])
        P = np.concatenate([pos, X[train & truth]]) if with_members else pos
        A = np.concatenate([P, neg])
        y = np.concatenate([np.ones(len(P), int), np.zeros(len(neg), int)])
        W = fit_softmax(A, y, 2, C)
        z = X[test] @ (W[:-1, 1] - W[:-1, 0]) + (W[-1, 1] - W[-1, 0])
        out.append(best_f1(z, truth[test]))
    return float(np.nanmean(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--pattern", default="s[012]-both-10-folders.pkl")
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    paths = sorted(args.store.glob(args.pattern))
    if not paths:
        sys.exit(f"no stored case {args.pattern} under {args.store}")
    for path in paths:
        with open(path, "rb") as f:
            rec = pickle.load(f)
        heads = {c: Head.from_dict(d) for c, d in rec["heads"].items()}
        got = answer_all(rec, heads)
        halves = np.random.default_rng(0).integers(0, 2, len(rec["X"]))
        for c in sorted(rec["classes"]):
            r = rows.setdefault(c, {k: [] for k in ("answer", "best cut", "10% +neg", "every")})
            r["answer"].append(got[c]["f1"])
            r["best cut"].append(got[c]["best_f1"])
            r["10% +neg"].append(oracle(rec, c, halves, False))
            r["every"].append(oracle(rec, c, halves, True))
        print(f"{path.name}: done", file=sys.stderr, flush=True)
    kinds = ["answer", "best cut", "10% +neg", "every"]
    table = {c: {k: float(np.mean(v[k])) for k in kinds} for c, v in rows.items()}
    mean = {k: float(np.mean([t[k] for t in table.values()])) for k in kinds}
    print("| class | filed | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 2) + "|")
    filed = {c: len(rec["classes"][c]) for c in rec["classes"]}
    for c in sorted(table, key=lambda c: table[c]["answer"]):
        print(f"| {c} | {filed[c]} | " + " | ".join(f"{table[c][k]:.3f}" for k in kinds) + " |")
    print("| **mean** | | " + " | ".join(f"**{mean[k]:.3f}**" for k in kinds) + " |")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        order = sorted(table, key=lambda c: table[c]["every"])
        fig, ax = plt.subplots(figsize=(11, 4.8))
        x = np.arange(len(order))
        width = 0.2
        for k, kind in enumerate(kinds):
            ax.bar(
                x + (k - 1.5) * width,
                [table[c][kind] for c in order],
                width,
                label=f"{kind} (mean {mean[kind]:.3f})",
            )
        ax.axhline(0.85, color="black", lw=1, ls="--", label="bar 0.85 (mean F1)")
        ax.set_xticks(x, [f"{c}\n{filed[c]} filed" for c in order], rotation=60, fontsize=7)
        ax.set_ylabel("F1 on unsorted/")
        ax.set_ylim(0, 1.05)
        ax.set_title(
            f"Combined library, 10% filed ({len(paths)} draws): the answer, the heads at an "
            "oracle cut, heads given more labels"
        )
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=5)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)
    print(json.dumps({"classes": table, "mean": mean, "draws": [p.name for p in paths]}))


if __name__ == "__main__":
    main()
