"""Where a head's default answer ends: the cut-off rules, all of them here.

A rule sees the background sample's logits under the trained head (sorted, highest first) and
what the training estimated of the class, and returns the cut as a logit; :func:`cut_off`
turns it into the probability stored as ``Head.threshold``. To add a rule, write a function
``rule(cut: CutInput, cfg: CutConfig) -> float`` below and name it in :data:`RULES`; a
:class:`~finder.learn.train.HeadConfig` picks it by that name (``HeadConfig(threshold=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from finder.errors import UsageError
from finder.learn.head import sigmoid


class CutConfig(Protocol):
    """The settings a rule may read (``HeadConfig`` has them all)."""

    threshold_logit: float
    size_offset: float
    size_slope: float
    size_ref: float
    gap_window: float


@dataclass(frozen=True)
class CutInput:
    zb: np.ndarray  # logits of the background sample under the head, highest first
    n_class: int | None  # the training's estimate of how many of the background are the class


def at_count(zb: np.ndarray, count: float) -> float:
    """A logit between the ``count``-th and the next highest of ``zb`` (descending)."""
    c = int(min(max(round(count), 1), len(zb) - 1))
    return float((zb[c - 1] + zb[c]) / 2)


def at_gap(zb: np.ndarray, count: float, window: float) -> float:
    """The widest gap between consecutive scores whose rank is within ``window``× of
    ``count``: where the class most plausibly ends."""
    m = len(zb)
    lo = max(1, int(np.floor(count / window)))
    hi = min(m - 1, int(np.ceil(count * window)))
    if hi < lo:
        return at_count(zb, count)
    cuts = np.arange(lo, hi + 1)  # cut between positions c-1 and c
    j = cuts[np.argmax(zb[cuts - 1] - zb[cuts])]
    return float((zb[j - 1] + zb[j]) / 2)


def gap_near_size(cut: CutInput, cfg: CutConfig) -> float:
    """The widest gap near the geometric mean of the class-size estimate and the head's own
    count past ``threshold_logit`` (the refinement of the default method uses it too)."""
    n_logit = max(1, int((cut.zb >= cfg.threshold_logit).sum()))
    return at_gap(cut.zb, float(np.sqrt((cut.n_class or n_logit) * n_logit)), cfg.gap_window)


def _fixed(cut: CutInput, cfg: CutConfig) -> float:
    return 0.0


def _logit(cut: CutInput, cfg: CutConfig) -> float:
    return cfg.threshold_logit


def _count(cut: CutInput, cfg: CutConfig) -> float:
    return at_count(cut.zb, cut.n_class or 1)


def _size_logit(cut: CutInput, cfg: CutConfig) -> float:
    """Small estimated classes cut higher, large ones lower:
    ``size_offset − size_slope·ln(n₀ / (size_ref·m))``, n₀ = background past logit 0."""
    n_past = max(1, int((cut.zb >= 0).sum()))
    return cfg.size_offset - cfg.size_slope * float(np.log(n_past / (cfg.size_ref * len(cut.zb))))


RULES: dict[str, Callable[[CutInput, CutConfig], float]] = {
    "fixed": _fixed,  # probability 0.5
    "logit": _logit,  # a fixed logit, threshold_logit
    "count": _count,  # at the estimated class size
    "gap": gap_near_size,
    "size-logit": _size_logit,
}


def cut_off(rule: str, cut: CutInput, cfg: CutConfig) -> float:
    """The probability cut-off of ``rule`` (clipped into [1e-4, 1 − 1e-4])."""
    if rule not in RULES:
        raise UsageError(f"unknown threshold rule {rule!r}")
    z = RULES[rule](cut, cfg)
    return float(np.clip(sigmoid(np.array([z]))[0], 1e-4, 1 - 1e-4))
