"""The answer near the cut, re-ranked by the photos around each one (one step of label
propagation over the library's nearest neighbours).

A linear head scores each photo alone. Near its cut a photo's own score is a coin toss; its
nearest neighbours in the library say more: those the person marked by their label, the
others by the head's own verdict on them. :func:`smoothed` moves each photo within ``width``
logits of the cut by ``weight · (2·q − 1)``, ``q`` the neighbours' mean (weighted by
``exp(cosine / temperature)``) of ``1`` for a ✓, ``0`` for a ✗ and ``sigmoid(z − cut)`` for
an unmarked photo. Only photos already scored near the cut move, and by at most ``weight``:
a re-rank of the candidates the linear search (``find`` searches with ``w``) returns around
the cut, never a head that would have to be searched otherwise. Logits are compared in the
fit's scale before softening (:func:`~finder.learn.calibrate.sharpen`), as the strips do.

Measured in docs/heads.md ("The answer near the cut, smoothed by its neighbours"); off by
default (:class:`Smooth` is given or not). numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from finder.learn.calibrate import sharpen
from finder.learn.head import sigmoid


@dataclass(frozen=True)
class Smooth:
    """``k`` neighbours; photos within ``width`` logits of the cut move by at most ``weight``
    logits; neighbours weigh ``exp(cosine / temperature)``. The defaults: the best measured
    on the traces of tf_flowers, the combined library and fine (docs/heads.md); beyond them
    (more weight, a wider band) nothing gains on all three."""

    k: int = 10
    weight: float = 3.0
    width: float = 2.0
    temperature: float = 0.05


def smoothed(
    z: np.ndarray,
    cut: float,
    nbr_z: np.ndarray,
    nbr_sim: np.ndarray,
    nbr_mark: np.ndarray,
    *,
    softened: Sequence[float] | None = None,
    config: Smooth = Smooth(),
) -> np.ndarray:
    """``z`` (logits ``[n]`` under the head, its cut ``cut``) re-ranked by each photo's
    neighbours: their logits ``nbr_z``, cosine similarities ``nbr_sim`` and marks ``nbr_mark``
    (``[n, k]``; 1 ✓, 0 ✗, NaN unmarked). Returns the new logits in the head's scale; photos
    further than ``config.width`` from the cut (before softening) keep theirs."""
    z = np.asarray(z, dtype=np.float64)
    if not len(z):
        return z.copy()
    zs = np.asarray(sharpen(z, softened), dtype=np.float64)
    c = float(sharpen(cut, softened))
    nz = np.asarray(sharpen(np.asarray(nbr_z, dtype=np.float64), softened), dtype=np.float64)
    mark = np.asarray(nbr_mark, dtype=np.float64)
    vote = np.where(np.isnan(mark), sigmoid(nz - c), mark)
    sim = np.asarray(nbr_sim, dtype=np.float64)
    w = np.exp((sim - sim.max(axis=1, keepdims=True)) / config.temperature)
    q = (w * vote).sum(axis=1) / w.sum(axis=1)
    move = np.where(np.abs(zs - c) < config.width, config.weight * (2.0 * q - 1.0), 0.0)
    scale = 1.0 if softened is None else float(softened[0])  # back to the head's scale
    return z + scale * move


def smooth_rows(
    z: np.ndarray,
    cut: float,
    X: np.ndarray,
    rows: np.ndarray,
    marks: Mapping[int, int],
    *,
    softened: Sequence[float] | None = None,
    config: Smooth = Smooth(),
) -> np.ndarray:
    """:func:`smoothed` for the photos ``rows`` of a library in memory (``X``: its unit vectors,
    ``z``: every photo's logit, ``marks``: position → 1 / 0): their neighbours found by brute
    force among all the others. Returns the logits of ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.asarray(z, dtype=np.float64)[rows].copy()
    zs = np.asarray(sharpen(out, softened))
    near = np.flatnonzero(np.abs(zs - float(sharpen(cut, softened))) < config.width)
    if not len(near) or len(X) < 2:
        return out
    k = min(config.k, len(X) - 1)
    label = np.full(len(X), np.nan)
    for i, y in marks.items():
        label[int(i)] = float(y)
    idx = np.empty((len(near), k), dtype=np.int64)
    sim = np.empty((len(near), k))
    for s in range(0, len(near), 512):
        part = rows[near[s : s + 512]]
        S = np.asarray(X[part] @ X.T, dtype=np.float64)
        S[np.arange(len(part)), part] = -np.inf  # not its own neighbour
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        idx[s : s + len(part)] = top
        sim[s : s + len(part)] = np.take_along_axis(S, top, axis=1)
    zall = np.asarray(z, dtype=np.float64)
    out[near] = smoothed(
        out[near], cut, zall[idx], sim, label[idx], softened=softened, config=config
    )
    return out
