"""How good is this answer: its precision and recall over the library, with a range, from marks.

A class's answer is every photo at or above its cut. How much of it is right (precision) and how
much of the class it finds (recall) is known exactly for the photos a person marked, and
estimated for the rest from the photos a strip drew at random (:mod:`finder.learn.strip`): a
photo drawn with chance ``π`` speaks for ``1 / π`` photos of the library as it was when that
strip was drawn (Horvitz-Thompson). Photos chosen because they are near the cut speak only for
themselves.

Strip ``r`` gives an unbiased estimate of any total over the library (the number of right
photos in the answer, of photos in the answer, of photos of the class):

    T_r = Σ marks made before strip r was drawn + Σ photos strip r chose + Σ its draws / π

and the estimate pools the strips that drew photos, each weighted by its number of draws. A
ratio of two totals (precision: right answers / answer; recall: right answers / class) gets its
variance by linearisation, each strip's draws taken as a sample with replacement (Hansen and
Hurwitz: slightly wider than the truth), and its range is a Wilson interval at the effective
sample size that variance implies, at most Kish's effective size of the weights (so that a few
draws that happen to agree do not make a narrow range; Korn and Graubard).

A mark (:class:`Mark`) says: its label, its score under the class's current head, how many
strips had been drawn when it was made (``known_from``), and, when a strip offered it, which
strip and with what chance (NaN for a chosen photo). Everything else the estimate needs is in
the marks: the answer is ``score >= cut``.

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

LEVEL: float = 0.9
"""The range holds the truth this often (when the sampling assumptions hold)."""

MIN_DRAWS: int = 10
"""No estimate before this many marked random draws."""


@dataclass(frozen=True)
class Mark:
    """A marked photo of a class, as the estimate sees it.

    ``label``: 1 ✓, 0 ✗. ``score``: its logit under the class's current head. ``known_from``:
    how many strips of the class had been drawn when it was marked (0 for the first examples).
    ``strip``: the strip that offered it (its number, counting from 0), None when none did.
    ``chance``: its probability of being drawn in that strip (a random draw), NaN when the strip
    chose it. ``held``: its logit under a head not trained on it (the class's cross-validated
    logits, ``Head.params["held_out"]``), NaN when there is none (``score`` stands in)."""

    label: int
    score: float
    known_from: int
    strip: int | None = None
    chance: float = float("nan")
    held: float = float("nan")

    @property
    def drawn(self) -> bool:
        return self.strip is not None and bool(np.isfinite(self.chance))


def _z(level: float) -> float:
    """The normal quantile of a two-sided ``level`` (the standard library's: scipy.stats
    takes a second to import, which ``classes --json`` would pay)."""
    return float(NormalDist().inv_cdf(0.5 + level / 2))


def wilson(p: float, n: float, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` seen on ``n`` (effective) draws."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(level)
    denom = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, mid - half)), float(min(1.0, mid + half))


def estimate(
    marks: Sequence[Mark], cut: float, *, level: float = LEVEL, min_draws: int = MIN_DRAWS
) -> dict | None:
    """``{"precision", "precision_range": [lo, hi], "recall", "recall_range": [lo, hi],
    "marks": n}`` of the answer ``score >= cut`` over the library, from ``marks`` (the
    module's docstring); ``marks`` counts the random draws it stands on. None until there are
    ``min_draws`` marked draws, with at least one photo of the class and one of the answer
    among what the estimate sees."""
    if not marks:
        return None
    y = np.asarray([m.label for m in marks], dtype=np.float64)
    g = np.asarray([m.score >= cut for m in marks], dtype=np.float64)
    held = np.asarray([m.held if np.isfinite(m.held) else m.score for m in marks])
    h = (held >= cut).astype(np.float64)  # in the answer by a head not trained on it
    known = np.asarray([m.known_from for m in marks])
    strip = np.asarray([-1 if m.strip is None else m.strip for m in marks])
    chance = np.asarray([m.chance for m in marks], dtype=np.float64)
    drawn = (strip >= 0) & np.isfinite(chance) & (chance > 0)
    rounds = [r for r in np.unique(strip[drawn]) if (drawn & (strip == r)).sum() >= 2]
    n_draws = int(sum((drawn & (strip == r)).sum() for r in rounds))
    if n_draws < min_draws:
        return None
    lam = np.asarray([(drawn & (strip == r)).sum() for r in rounds], dtype=np.float64)
    lam /= lam.sum()
    # each mark counts itself (as the current head answers it) in the strips it was known to,
    # chosen in, or drawn in; a draw also speaks for 1/π − 1 photos it stood for, answered as a
    # head not trained on it answers it (the current head is: it would flatter the estimate)
    own = np.zeros(len(marks))
    stood = np.zeros(len(marks))
    samples = []
    for lr, r in zip(lam, rounds, strict=True):
        here = drawn & (strip == r)
        own += lr * ((known <= r) | (strip == r))
        stood[here] += lr * (1.0 / chance[here] - 1.0)
        samples.append((lr, here))

    def parts(v_in: np.ndarray, v_out: np.ndarray) -> tuple[float, list]:
        t = [(lr, v_in[here] + (1.0 / chance[here] - 1.0) * v_out[here]) for lr, here in samples]
        return float(own @ v_in + stood @ v_out), t

    def variance(t: list) -> float:
        out = 0.0
        for lr, terms in t:
            k = len(terms)
            out += lr * lr * k / (k - 1) * float(((terms - terms.mean()) ** 2).sum())
        return out

    tp, t_tp = parts(y * g, y * h)
    answer, t_a = parts(g, h)
    cls, t_c = parts(y, y)
    if answer <= 0 or cls <= 0:
        return None
    out: dict = {}
    weight = own + stood
    for name, num, den, t_num, t_den, dom in (
        ("precision", tp, answer, t_tp, t_a, np.maximum(g, h)),
        ("recall", tp, cls, t_tp, t_c, y),
    ):
        r = min(max(num / den, 0.0), 1.0)
        resid = [(lr, a - r * b) for (lr, a), (_, b) in zip(t_num, t_den, strict=True)]
        var = variance(resid) / den**2
        w = weight[dom > 0]
        kish = float(w.sum() ** 2 / (w * w).sum()) if len(w) else 1.0
        n_eff = min(kish, r * (1 - r) / var) if var > 0 and 0 < r < 1 else kish
        lo, hi = wilson(r, max(n_eff, 1.0), level)
        out[name] = r
        out[f"{name}_range"] = [min(lo, r), max(hi, r)]
    out["marks"] = n_draws
    return out
