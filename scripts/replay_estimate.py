"""The estimate replayed over traced feedback runs: its coverage and widths, round by round.

``scripts/experiment_feedback.py --trace T`` pickles every (class, trial, round) case of a run:
the marks ``(position, label, known_from, strip, chance)``, the head's logits ``z`` over the
library, its cut, the held-out photos ``hold`` and the marks' cross-validated logits ``held``.
This replays :func:`finder.learn.estimate.estimate` (and :func:`~finder.learn.estimate.
horvitz_thompson`, ``--ht``) over those cases exactly as ``finder.learn.feedback`` calls it (the
truth: the answer's precision and recall over the library without the held-out photos) and
prints, per library: the share of (class, trial) cases whose range held the truth over rounds
2 to 10 and in the worst round, and the median half-widths after 5 and 10 strips. Issue 23's
bar: coverage >= 0.85 in every round from 2, half-widths <= 0.10 after 5 strips.

    python scripts/replay_estimate.py T.tf.pkl [T.fine.pkl ...] [--ht]
        [--set tail=0.01 near=0 ...] [--head]

(``--set near=0``: the design-based estimate alone, as before the near band was the model's.)

The last line is JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import pickle
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.estimate import Mark, estimate, horvitz_thompson  # noqa: E402
from finder.learn.scores import precision_recall  # noqa: E402


def load(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


def cases(data: dict, head: bool = False) -> Iterator[dict]:
    """Each traced case as the estimate sees it: ``marks`` (:class:`Mark`), ``unmarked`` (the
    logits of the photos a strip could draw), ``cut``, and the truth ``P`` and ``R``: of the
    answer the run scored (smoothed by its neighbours when the trace holds ``smoothed``, the
    marks' held-out logits smoothed the same way), or the head's own (``head``)."""
    labels = np.asarray(data["labels"])
    for case in data["cases"]:
        truth = labels == case["class"]
        hold = np.asarray(case["hold"], dtype=bool)
        z = np.asarray(case["z"])
        held = case.get("held") or {}
        z0, held0 = z, held
        if not head and case.get("smoothed") is not None:
            z, held = np.asarray(case["smoothed"]), case.get("held_smoothed") or {}
        cut = case["cut"]
        marked = np.zeros(len(z), dtype=bool)
        nan = float("nan")
        marks, drawn_held = [], []
        for i, lab, kf, s, c in case["marks"]:
            marks.append(Mark(lab, float(z[i]), kf, s, c, held.get(i, nan)))
            drawn_held.append(held0.get(i, float(z0[i])))
            marked[i] = True
        frame = ~hold
        p, r, _ = precision_recall(truth[frame], (z >= np.float32(cut))[frame])
        yield {
            "class": case["class"],
            "trial": case["trial"],
            "round": case["round"],
            "marks": marks,
            "unmarked": z[frame & ~marked],
            "drawn_by": (z0[frame & ~marked], np.asarray(drawn_held)),
            "cut": cut,
            "softened": case.get("softened"),
            "P": p,
            "R": r,
        }


def replay(path: Path, fn: Callable[[dict], dict | None], head: bool = False) -> dict:
    """Per round: coverage of P and R, median half-widths, and how many cases had an estimate."""
    per: dict[int, list] = {}
    for c in cases(load(path), head):
        e = fn(c)
        if not e:
            continue
        (plo, phi), (rlo, rhi) = e["precision_range"], e["recall_range"]
        per.setdefault(c["round"], []).append(
            (
                plo - 1e-9 <= c["P"] <= phi + 1e-9,
                rlo - 1e-9 <= c["R"] <= rhi + 1e-9,
                (phi - plo) / 2,
                (rhi - rlo) / 2,
            )
        )
    out = {}
    for r in sorted(per):
        a = np.asarray(per[r], dtype=np.float64)
        out[r] = {
            "n": len(a),
            "p_cov": float(a[:, 0].mean()),
            "r_cov": float(a[:, 1].mean()),
            "p_half": float(np.median(a[:, 2])),
            "r_half": float(np.median(a[:, 3])),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+", type=Path)
    ap.add_argument("--ht", action="store_true", help="Horvitz-Thompson instead")
    ap.add_argument("--set", nargs="*", default=[], help="estimate() keyword overrides, k=v")
    ap.add_argument("--rounds", action="store_true", help="print every round")
    ap.add_argument(
        "--no-drawn-by",
        action="store_true",
        help="the draws' chances by the smoothed logits, not the head's (estimate(drawn_by=))",
    )
    ap.add_argument(
        "--head", action="store_true", help="the head's own answer (not the smoothed one traced)"
    )
    args = ap.parse_args()
    kw = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.ht:

        def fn(c: dict) -> dict | None:
            return horvitz_thompson(c["marks"], c["cut"], **kw)
    else:

        def fn(c: dict) -> dict | None:
            return estimate(
                c["marks"],
                c["cut"],
                unmarked=c["unmarked"],
                softened=c["softened"],
                drawn_by=None if args.no_drawn_by or args.head else c["drawn_by"],
                **kw,
            )

    report = {}
    print(
        "| library | cases r2+ | cover P / R r2+ | worst round P / R | ± r5 P / R | ± r10 P / R |"
    )
    print("|---|---|---|---|---|---|")
    for path in args.traces:
        lib = path.name.rsplit(".", 2)[-2] if path.name.count(".") >= 2 else path.stem
        got = replay(path, fn, args.head)
        late = {r: v for r, v in got.items() if r >= 2}
        n = sum(v["n"] for v in late.values())
        pc = sum(v["p_cov"] * v["n"] for v in late.values()) / max(n, 1)
        rc = sum(v["r_cov"] * v["n"] for v in late.values()) / max(n, 1)
        worst = min(late, key=lambda r: min(late[r]["p_cov"], late[r]["r_cov"]))
        w = late[worst]

        def half(r: int, got: dict = got) -> str:
            v = got.get(r)
            return f"{v['p_half']:.3f} / {v['r_half']:.3f}" if v else "–"

        print(
            f"| {lib} | {n} | {pc:.3f} / {rc:.3f} | r{worst} {w['p_cov']:.2f} / "
            f"{w['r_cov']:.2f} | {half(5)} | {half(10)} |",
            flush=True,
        )
        if args.rounds:
            for r, v in got.items():
                print(
                    f"|   r{r} | {v['n']} | {v['p_cov']:.2f} / {v['r_cov']:.2f} | | "
                    f"{v['p_half']:.3f} / {v['r_half']:.3f} | |"
                )
        report[lib] = {"coverage": [pc, rc], "worst_round": worst, "rounds": got}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
