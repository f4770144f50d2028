"""Replay ``scripts/bench_filed.py``'s product path on stored inputs (issue 25).

``record``: runs ``bench_filed.py`` (its arguments after ``--``) with each filed class's
training inputs (what ``Teaching`` gives ``train_filed_head``, less the pool's prepared rows)
and, per library, case and filing, the unsorted photos (vectors, truth), the filed ids and the
heads the product trained, pickled under ``--store``. ``replay``: each stored case trained
again from those inputs (``--retrain``, else the stored heads) and answered as
``Filing.suggest`` answers (``finder.siblings``: the cut lowered by the slack, the photos
shared out among the exclusive siblings by margin and joint head), with the module constants
of ``--set NAME=VALUE`` (``finder.learn.filed.HELD_OUT_BELOW=1000``...) for a variant;
prints each case's mean F1 (two species: the worst precision and recall of the two) and
per class P / R / answered / truth / size estimate.

    OMP_NUM_THREADS=1 python scripts/filed_replay.py record --store DIR -- --seed 1 ...
    OMP_NUM_THREADS=1 python scripts/filed_replay.py replay --store DIR [--retrain]
        [--set finder.learn.filed.X=V ...] [--only two] [--classes] [--smooth [k=V ...]]

``--smooth``: each class's logits over the unsorted photos re-ranked near its cut by their
neighbours first (``finder.learn.smooth``, its settings ``k=V``), the filed photos as marks (✓
for the class, ✗ for its exclusive siblings'): what the answer's re-rank would do to
``suggest`` (an experiment; docs/heads.md, issue 25's eighth pass).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn.head import Head, sigmoid  # noqa: E402

TWO = ("daisy", "dandelion")


# -- record -----------------------------------------------------------------------------------
def record(store: Path, bench_args: list[str]) -> None:
    import finder.teach as teach
    import scripts.bench_filed as bench
    from scripts import filed_variants

    store.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    trained: list[tuple[dict, Head]] = []
    original = teach.train_filed_head

    def recorder(**inputs):
        head = original(**inputs)
        kept = {k: v for k, v in inputs.items() if k != "prepared"}
        with lock:
            trained.append((kept, Head.from_dict(head.to_dict())))
        return head

    teach.train_filed_head = recorder
    shipped = filed_variants.Bench.shipped
    seed = next((int(bench_args[k + 1]) for k, a in enumerate(bench_args) if a == "--seed"), 0)
    where = {"case": "?"}

    def shipped_recording(self, how, classes, unsorted, X, truth):
        trained.clear()
        got = shipped(self, how, classes, unsorted, X, truth)
        heads = {c: Head.from_dict(self.lib.class_record(c)["head"]) for c in classes}
        inputs = {}
        for c, h in heads.items():
            for kept, th in trained:
                if th.w.shape == h.w.shape and np.array_equal(th.w, h.w) and th.b == h.b:
                    inputs[c] = kept
        metric = self.lib.metric()
        from finder.learn.joint import draw

        store_v = self.lib.folder.open_vectors()
        joint_vectors = {c: store_v.get(draw(ids)) for c, ids in classes.items()}
        labels = {c: t for c, t in truth.items()}
        n_lib = len(self.label_of)
        name = f"s{seed}-{'both' if n_lib > 4100 else 'tf'}-{where['case']}-{how}.pkl"
        with open(store / name, "wb") as f:
            pickle.dump(
                dict(
                    classes=classes,
                    unsorted=unsorted,
                    X=X,
                    truth=labels,
                    heads={c: h.to_dict() for c, h in heads.items()},
                    inputs=inputs,
                    metric=metric,
                    joint_vectors=joint_vectors,
                    product={k: v for k, v in got.items() if k != "classes"}
                    | {"classes": got["classes"]},
                ),
                f,
            )
        print(f"recorded {name}: {len(inputs)} of {len(classes)} inputs", file=sys.stderr)
        return got

    filed_variants.Bench.shipped = shipped_recording
    choose = bench.choose_filed

    def choose_named(photos, fraction, only, seed_, small=None):
        where["case"] = "two" if only else f"{round(fraction * 100)}"
        return choose(photos, fraction, only, seed_, small)

    bench.choose_filed = choose_named
    sys.argv = ["bench_filed.py", *bench_args]
    bench.main()


# -- replay -----------------------------------------------------------------------------------
class FakeRecord:
    def __init__(self, name: str):
        self.name = name


def answer_all(rec: dict, heads: dict[str, Head]) -> dict[str, dict]:
    """``Filing.suggest`` for every class of ``rec`` (folders: every class a sibling of every
    other), scored on the unsorted photos."""
    from scipy.special import log_softmax

    from finder.learn.filed import exclusive_slack
    from finder.learn.joint import JOINT_MIN_FILED, Joint, keep_own

    X, classes, metric = rec["X"], rec["classes"], rec["metric"]
    names = sorted(classes)
    able = [c for c in names if len(classes[c]) >= JOINT_MIN_FILED]
    joint = None
    if len(able) > 1:
        joint = Joint([rec["joint_vectors"][c] for c in able], metric)
        print(f"    joint head: held-out accuracy {joint.accuracy:.3f}", file=sys.stderr)
        if not joint.trusted:
            joint = None
        log_q_all = log_softmax(joint.scores(X), axis=1)
    margins = {c: heads[c].logits(X) - heads[c].logit_threshold for c in names}
    out = {}
    for c in names:
        own = heads[c]
        rivals = [heads[r] for r in names if r != c]
        slack = exclusive_slack(own, rivals)
        floor = float(sigmoid(np.asarray([own.logit_threshold - slack]))[0])
        passes = own.proba(X) >= floor
        others = [r for r in names if r != c]
        theirs = [margins[r] for r in others]
        if joint is not None and c in able:
            cols = [able.index(c), *(able.index(r) for r in others if r in able)]
            log_q = log_q_all[:, cols]
            joined = [r in able for r in others]
        else:
            log_q, joined = None, []
        kept = keep_own(margins[c], theirs, log_q, joined)
        got = passes & kept
        t = rec["truth"][c]
        tp = int((got & t).sum())
        p = tp / max(int(got.sum()), 1) if got.any() else 0.0
        r = tp / max(int(t.sum()), 1)
        f1 = 2 * p * r / (p + r) if tp else 0.0
        z = own.logits(X)
        hits = np.cumsum(t[np.argsort(-z, kind="stable")])
        best = float((2 * hits / (np.arange(1, len(hits) + 1) + max(int(t.sum()), 1))).max())
        out[c] = dict(
            precision=p,
            recall=r,
            f1=f1,
            best_f1=best,
            answered=int(got.sum()),
            truth=int(t.sum()),
            estimate=own.params.get("n_class_estimate", 0)
            / max(own.params.get("n_background", 1), 1)
            * len(X),
            slack=slack,
        )
    return out


class _Rescored:
    """A head whose logits over the unsorted photos are given (the re-ranked ones)."""

    def __init__(self, head: Head, z: np.ndarray) -> None:
        self.head, self.z = head, z
        self.logit_threshold, self.params = head.logit_threshold, head.params

    def logits(self, X: np.ndarray) -> np.ndarray:
        return self.z

    def proba(self, X: np.ndarray) -> np.ndarray:
        return sigmoid(self.z)


def smoothed(rec: dict, heads: dict[str, Head], config) -> dict[str, _Rescored]:
    """Each class's head with its logits over ``rec``'s unsorted photos re-ranked by their
    neighbours among the unsorted and filed photos (a filed photo: ✓ for its class, ✗ for the
    others)."""
    from finder.learn.smooth import smooth_rows

    X, names = rec["X"], sorted(rec["classes"])
    filed = [rec["joint_vectors"][c] for c in names]
    owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(filed)])
    L = np.vstack([X, *filed]).astype(np.float32)
    out = {}
    for i, c in enumerate(names):
        h = heads[c]
        marks = {len(X) + j: int(o == i) for j, o in enumerate(owner)}
        z = smooth_rows(
            h.logits(L),
            h.logit_threshold,
            L,
            np.arange(len(X)),
            marks,
            softened=h.params.get("softened"),
            config=config,
        )
        out[c] = _Rescored(h, z)
    return out


def retrain(rec: dict) -> dict[str, Head]:
    from finder.learn.filed import train_filed_head

    heads = {}
    for c in sorted(rec["classes"]):
        inp = rec["inputs"].get(c)
        if inp is None:
            heads[c] = Head.from_dict(rec["heads"][c])
            continue
        heads[c] = train_filed_head(**inp)
    return heads


def set_constants(pairs: list[str]) -> None:
    for pair in pairs:
        name, value = pair.split("=", 1)
        module, attr = name.rsplit(".", 1)
        mod = importlib.import_module(module)
        setattr(mod, attr, json.loads(value))


def replay(store: Path, args) -> None:
    set_constants(args.set or [])
    if args.hook:
        mod, fn = args.hook.split(":")
        getattr(importlib.import_module(mod), fn)()
    results = {}
    for path in sorted(store.glob(args.pattern)):
        with open(path, "rb") as f:
            rec = pickle.load(f)
        heads = (
            retrain(rec)
            if args.retrain
            else {c: Head.from_dict(d) for c, d in rec["heads"].items()}
        )
        if args.smooth is not None:
            from finder.learn.smooth import Smooth

            config = Smooth(
                **{k: json.loads(v) for k, _, v in (a.partition("=") for a in args.smooth)}
            )
            heads = smoothed(rec, heads, config)
        per = answer_all(rec, heads)
        case = path.stem
        if "-two-" in path.name:
            worst_p = min(per[c]["precision"] for c in TWO if c in per)
            worst_r = min(per[c]["recall"] for c in TWO if c in per)
            line = f"P {worst_p:.3f} R {worst_r:.3f}"
            value = [worst_p, worst_r]
        else:
            value = float(np.mean([v["f1"] for v in per.values()]))
            line = f"F1 {value:.4f} (best cut {np.mean([v['best_f1'] for v in per.values()]):.4f})"
        prod = rec["product"]
        if "-two-" in path.name:
            pp = prod["classes"]
            worst = [min(pp[c][k] for c in TWO) for k in ("precision", "recall")]
            ref = f"bench P {worst[0]:.3f} R {worst[1]:.3f}"
        else:
            ref = f"bench F1 {prod['f1']:.4f}"
        print(f"{case}: {line}   [{ref}]", flush=True)
        if args.classes:
            for c, v in sorted(per.items()):
                print(
                    f"    {c:16s} P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f} "
                    f"best {v['best_f1']:.3f} answered {v['answered']:4d} truth {v['truth']:4d} "
                    f"est {v['estimate']:7.1f} slack {v['slack']:.2f}"
                )
        results[case] = value
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--store", type=Path, required=True)
    r.add_argument("bench", nargs=argparse.REMAINDER)
    p = sub.add_parser("replay")
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--pattern", default="*.pkl")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--set", nargs="*")
    p.add_argument("--hook", help="module:function called before replaying (a variant)")
    p.add_argument("--classes", action="store_true")
    p.add_argument("--smooth", nargs="*", help="re-rank by neighbours first (Smooth's k=V ...)")
    args = ap.parse_args()
    if args.cmd == "record":
        rest = args.bench[1:] if args.bench[:1] == ["--"] else args.bench
        record(args.store, rest)
    else:
        replay(args.store, args)


if __name__ == "__main__":
    main()
