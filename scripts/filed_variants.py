"""How ``scripts/bench_filed.py`` (issue 25) teaches and scores each variant: the product
(``Library.learn_from_folders`` / ``learn_from_keywords``, then ``Library.suggest``), today's
``Library.learn`` on a class's filed photos (``plain``), and the experiments of that script's
docstring (siblings as counter-examples at a weight, one folder per photo, the joint head);
every answer scored on ``unsorted/`` against the truth (precision, recall, F1, ECE, and the
best-cut F1 the class's ranking allows: an oracle cut)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finder.learn import fit as fit_module
from finder.learn.head import Head
from finder.learn.joint import fit_softmax
from finder.learn.scores import calibration_error
from finder.learn.train import background_indices, train_head
from finder.library import Library
from scripts.filed_tree import filed_classes


# -- training ---------------------------------------------------------------------------------
@dataclass
class Taught:
    head: Head
    background: np.ndarray  # the ids of its background sample


def teach(
    lib: Library,
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    neg_weight: float = fit_module.EXPLICIT_NEGATIVE_WEIGHT,
    seed: int = 0,
) -> Taught:
    """What ``Library.learn`` does for a new class from these ids (examples ``pos``,
    counter-examples ``neg``: the same background draw, metric and call of ``train_head``),
    with counter-examples weighing ``neg_weight`` instead of ``EXPLICIT_NEGATIVE_WEIGHT``."""
    store = lib.folder.open_vectors()
    all_ids = np.sort(store.ids())
    exclude = np.flatnonzero(np.isin(all_ids, np.concatenate([pos, neg])))
    picked = background_indices(len(all_ids), exclude, np.random.default_rng(seed))
    background_ids = all_ids[np.sort(picked)]
    P = store.get(pos)
    N = store.get(neg) if len(neg) else np.zeros((0, store.dim), np.float32)
    saved = fit_module.EXPLICIT_NEGATIVE_WEIGHT
    fit_module.EXPLICIT_NEGATIVE_WEIGHT = neg_weight  # read by fit.Problem (negatives, labels)
    try:
        head = train_head(
            P,
            N,
            store.get(background_ids),
            seed=seed,
            metric=lib.metric(),
        )
    finally:
        fit_module.EXPLICIT_NEGATIVE_WEIGHT = saved
    return Taught(head, background_ids)


def learn_plain(lib: Library, name: str, pos: np.ndarray) -> Taught:
    """Today's path: ``Library.learn(name, its filed photos)`` (under another name than the
    filed class's, which it leaves alone)."""
    paths = lib.folder.open_catalog().paths_for(pos.tolist())
    name = f"plain {name}"
    if name in lib.folder.open_catalog().class_names():
        lib.forget(name)
    record = lib.learn(name, [paths[int(i)] for i in pos])
    lib.forget(name)
    return Taught(Head.from_dict(record["head"]), np.zeros(0, np.int64))


def joint_scores(lib: Library, classes: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """A multinomial logistic head over the filed classes, trained on the filed photos alone
    (in the library's metric, ``C`` = ``JOINT_C``): which of the siblings a photo is most like.
    Scores of ``X``, one column per class in sorted order."""
    names = sorted(classes)
    metric = lib.metric()
    store = lib.folder.open_vectors()
    F = np.concatenate([store.get(classes[c]) for c in names])
    y = np.concatenate([np.full(len(classes[c]), k) for k, c in enumerate(names)])
    apply = metric.apply if metric is not None else (lambda A: A)
    W = fit_softmax(apply(F), y, len(names), JOINT_C)
    return np.hstack([apply(X), np.ones((len(X), 1))]) @ W


JOINT_C = 10.0
"""The experiment's (the product's joint head, ``finder/siblings.py``: ``learn.joint.JOINT_C``)."""


# -- scoring ----------------------------------------------------------------------------------
def answer(
    truth: np.ndarray, returned: np.ndarray, proba: np.ndarray, logits: np.ndarray | None = None
) -> dict[str, float]:
    """Precision, recall and F1 of the suggestions ``returned`` (an empty answer has precision
    0), and the ECE of ``proba`` over every unsorted photo; with ``logits`` (the class's head
    on them), ``best_f1``: the F1 of the best answer its ranking allows, the cut chosen from the
    truth (an oracle: what the vectors and the head allow, whatever the cut rule)."""
    tp = int((truth & returned).sum())
    precision = tp / int(returned.sum()) if returned.any() else 0.0
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ece": calibration_error(truth, proba),
    }
    if logits is not None:
        hits = np.cumsum(truth[np.argsort(-logits, kind="stable")])
        shown = np.arange(1, len(hits) + 1)
        out["best_f1"] = float((2 * hits / (shown + max(int(truth.sum()), 1))).max(initial=0.0))
    return out


def independent(heads: dict[str, Taught], X: np.ndarray, truth: dict) -> dict[str, dict]:
    """Each class's suggestions: the photos at or above its own cut."""
    out = {}
    for c, t in heads.items():
        z = t.head.logits(X)
        out[c] = answer(truth[c], z >= np.float32(t.head.logit_threshold), t.head.proba(X))
    return out


def exclusive(
    heads: dict[str, Taught],
    X: np.ndarray,
    truth: dict,
    chooser: np.ndarray | None = None,
    margin: float = 0.0,
) -> dict[str, dict]:
    """A photo suggested for one class at most (a photo is filed in one folder): among the
    classes whose cut (lowered by ``margin`` logits) it passes, the one ``chooser`` (scores per
    class) ranks first, else the one whose head gives it the highest probability."""
    names = sorted(heads)
    Z = np.stack([heads[c].head.logits(X) for c in names], axis=1)
    cut = np.asarray([heads[c].head.logit_threshold for c in names], dtype=np.float32)
    passes = Z >= cut - margin
    if chooser is None:
        best = np.argmax(np.where(passes, Z, -np.inf), axis=1)
        pick = passes[np.arange(len(X)), best]
    else:
        best = np.argmax(chooser, axis=1)
        pick = passes[np.arange(len(X)), best]
    return {
        c: answer(truth[c], pick & (best == j), heads[c].head.proba(X)) for j, c in enumerate(names)
    }


def means(per_class: dict[str, dict[str, float]], extra: dict | None = None) -> dict:
    keys = ["precision", "recall", "f1", "ece"]
    if all("best_f1" in v for v in per_class.values()):
        keys.append("best_f1")
    out = {k: float(np.mean([v[k] for v in per_class.values()])) for k in keys}
    out["classes"] = {c: {k: round(v[k], 4) for k in keys} for c, v in per_class.items()}
    if extra:
        out |= extra
    return out


@dataclass
class Bench:
    lib: Library
    tree: Path
    label_of: dict[str, str]  # file name → class
    log: Callable[[str], None]
    plain: bool = True  # whether the plain variant runs on this library
    cache: dict = field(default_factory=dict)  # (variant, class, inputs) → Taught
    reused: int = 0

    def shipped(
        self,
        how: str,
        classes: dict[str, np.ndarray],
        unsorted: np.ndarray,
        X: np.ndarray,
        truth: dict,
    ) -> dict:
        """The product: ``Library.learn_from_folders(TREE)`` or ``learn_from_keywords()`` (a
        class of each, or those refreshed: trained again only when their photos changed),
        then ``Library.suggest`` per class, scored on ``unsorted/``."""
        if how == "folders":
            report = self.lib.learn_from_folders(str(self.tree), min_photos=1)
        else:
            report = self.lib.learn_from_keywords(min_photos=1)
        per = {}
        for c in classes:
            got = np.asarray([m.id for m in self.lib.suggest(c)], dtype=np.int64)
            head = Head.from_dict(self.lib.class_record(c)["head"])
            per[c] = answer(truth[c], np.isin(unsorted, got), head.proba(X), head.logits(X))
        trained = len(report.learned) + len(report.refreshed)
        return means(per, {"trained": trained, "not_trained": len(report.unchanged)})

    def taught(self, key: tuple, make: Callable[[], Taught]) -> Taught:
        """A head from the cache when trained from the very same ids before (training is
        deterministic: the same ids give the same head), else made now."""
        if key not in self.cache:
            self.cache[key] = make()
        else:
            self.reused += 1
        return self.cache[key]

    def evaluate(self, how: str, variants: Sequence[str], weak: Sequence[float]) -> dict:
        cat = self.lib.folder.open_catalog()
        classes = filed_classes(self.lib, self.tree, how)
        unsorted = np.sort(
            np.asarray(cat.ids_under(str(self.tree / "unsorted"), "ok"), dtype=np.int64)
        )
        paths = cat.paths_for(unsorted.tolist())
        labels = np.asarray([self.label_of[os.path.basename(paths[int(i)])] for i in unsorted])
        X = self.lib.folder.open_vectors().get(unsorted)
        truth = {c: labels == c for c in classes}
        every = np.sort(np.asarray(cat.ok_ids(), dtype=np.int64))
        every_paths = cat.paths_for(every.tolist())
        label_by_id = {int(i): self.label_of[os.path.basename(p)] for i, p in every_paths.items()}

        def digest(ids: np.ndarray) -> bytes:
            return ids.tobytes()

        def others(c: str) -> np.ndarray:
            rest = [ids for name, ids in classes.items() if name != c]
            return np.sort(np.concatenate(rest)) if rest else np.zeros(0, np.int64)

        def heads(kind: str, w: float | None = None) -> dict[str, Taught]:
            out = {}
            for c, ids in classes.items():
                if kind == "plain":
                    key = ("plain", c, digest(ids))
                    out[c] = self.taught(key, lambda c=c, ids=ids: learn_plain(self.lib, c, ids))
                else:
                    neg = others(c)
                    key = ("siblings", w, c, digest(ids), digest(neg))
                    out[c] = self.taught(
                        key, lambda ids=ids, neg=neg: teach(self.lib, ids, neg, neg_weight=w)
                    )
            return out

        def sizes(hs: dict[str, Taught]) -> dict:
            """The class size each head estimated in its background, and the truth there."""
            return {
                "size_estimate": {
                    c: [
                        round(float(t.head.params.get("n_class_estimate", 0))),
                        sum(1 for i in t.background if label_by_id.get(int(i)) == c),
                    ]
                    for c, t in hs.items()
                }
            }

        out: dict[str, dict] = {}
        strong = fit_module.EXPLICIT_NEGATIVE_WEIGHT
        for variant in variants:
            started = time.monotonic()
            if variant == "product":
                out["product"] = self.shipped(how, classes, unsorted, X, truth)
            elif variant == "plain" and not self.plain:
                continue
            elif variant == "plain":
                out["plain"] = means(independent(heads("plain"), X, truth))
            elif variant == "siblings":
                hs = heads("siblings", strong)
                out["siblings"] = means(independent(hs, X, truth), sizes(hs))
            elif variant == "weak":
                for w in weak:
                    hs = heads("siblings", w)
                    out[f"weak {w:g}"] = means(independent(hs, X, truth), sizes(hs))
            elif variant == "one-folder":
                out["one-folder"] = means(exclusive(heads("siblings", strong), X, truth))
            elif variant == "joint":
                hs = heads("siblings", strong)
                chooser = joint_scores(self.lib, classes, X) if len(classes) > 1 else None
                out["joint"] = means(exclusive(hs, X, truth, chooser))
                out["joint -1"] = means(exclusive(hs, X, truth, chooser, margin=1.0))
                out["joint, no gate"] = means(exclusive(hs, X, truth, chooser, margin=np.inf))
            self.log(f"    {how} {variant}: {time.monotonic() - started:.0f} s")
        out["filed"] = {c: int(len(ids)) for c, ids in classes.items()}
        return out
