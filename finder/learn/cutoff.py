"""Where a head's default answer ends: the cut-off rules, all of them here.

A rule sees the background sample's logits under the trained (calibrated) head, sorted highest
first, and what the training estimated of the class, and returns the cut as a logit;
:func:`cut_off` turns it into the probability stored as ``Head.threshold``. To add a rule, write a
function ``rule(cut: CutInput, cfg: CutConfig) -> float`` below, name it in :data:`RULES`, and
give its settings a field of :class:`CutConfig`; a head picks it with
``HeadConfig(cut=CutConfig(rule=...))``.

The default, ``expected-f1``, needs calibrated probabilities (finder.learn.calibrate): the
background is a random sample of the library, so ``sum(p)`` over it estimates how many of it are
of the class, and the cut that maximises the expected F1 of the answer over the sample is the
one for the library. The others are the rules of docs/heads.md's earlier rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from finder.errors import UsageError
from finder.learn.head import sigmoid


@dataclass(frozen=True)
class CutConfig:
    """Which rule cuts, and the settings of the rules."""

    rule: str = "expected-f1"
    logit: float = 0.0  # "logit": the cut; "gap": the count it starts from
    gap_window: float = 1.3  # "gap": how far from the size estimate the gap may be (×)
    # "size-logit": cut = size_offset - size_slope·ln(n / (size_ref·m)), n = past logit 0
    size_offset: float = 0.3
    size_slope: float = 0.4
    size_ref: float = 0.037
    beta: float = 1.0  # "expected-f1": the F-beta maximised (below 1: precision weighs more)


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
    n_logit = max(1, int((cut.zb >= cfg.logit).sum()))
    return at_gap(cut.zb, float(np.sqrt((cut.n_class or n_logit) * n_logit)), cfg.gap_window)


def _fixed(cut: CutInput, cfg: CutConfig) -> float:
    return 0.0


def _logit(cut: CutInput, cfg: CutConfig) -> float:
    return cfg.logit


def _count(cut: CutInput, cfg: CutConfig) -> float:
    return at_count(cut.zb, cut.n_class or 1)


def _size_logit(cut: CutInput, cfg: CutConfig) -> float:
    """Small estimated classes cut higher, large ones lower:
    ``size_offset − size_slope·ln(n₀ / (size_ref·m))``, n₀ = background past logit 0."""
    n_past = max(1, int((cut.zb >= 0).sum()))
    return cfg.size_offset - cfg.size_slope * float(np.log(n_past / (cfg.size_ref * len(cut.zb))))


def _expected_f1(cut: CutInput, cfg: CutConfig) -> float:
    """The cut maximising ``2·Σ_{answer} p / (|answer| + Σ p)`` over the background, ``p`` the
    calibrated probabilities: the expected F1 of the answer, for a library the sample is like."""
    p = sigmoid(cut.zb)
    b2 = cfg.beta * cfg.beta
    f1 = (1 + b2) * np.cumsum(p) / (np.arange(1, len(p) + 1) + b2 * p.sum())
    j = int(np.argmax(f1))
    return float(cut.zb[j] if j + 1 >= len(p) else (cut.zb[j] + cut.zb[j + 1]) / 2)


RULES: dict[str, Callable[[CutInput, CutConfig], float]] = {
    "expected-f1": _expected_f1,
    "fixed": _fixed,  # probability 0.5
    "logit": _logit,  # a fixed logit, threshold_logit
    "count": _count,  # at the estimated class size
    "gap": gap_near_size,
    "size-logit": _size_logit,
}


def cut_off(cut: CutInput, cfg: CutConfig) -> float:
    """The probability cut-off of the rule ``cfg.rule`` (clipped into [1e-4, 1 − 1e-4])."""
    if cfg.rule not in RULES:
        raise UsageError(f"unknown cut-off rule {cfg.rule!r}")
    z = RULES[cfg.rule](cut, cfg)
    return float(np.clip(sigmoid(np.array([z]))[0], 1e-4, 1 - 1e-4))
