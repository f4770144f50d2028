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

Measured in docs/heads.md ("The answer near the cut, smoothed by its neighbours"): the answer
``finder eval --feedback`` scores by default (:func:`finder.learn.feedback.feedback`,
``smooth=Smooth()``; ``--no-smooth`` the head's own). :func:`smooth_graph` re-ranks over
precomputed neighbours (:func:`neighbours`, or a stored graph), :func:`smooth_rows` finds them
first. numpy only.
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


def neighbours(
    X: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours (cosine) of the photos ``rows`` (all: None) among all the
    others of the library ``X`` (unit vectors), by brute force: ``(ids [n, k], sims [n, k])``,
    each row most similar first (so its first ``k' < k`` columns are its ``k'`` nearest)."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows, dtype=np.int64)
    k = max(min(int(k), len(X) - 1), 0)
    ids = np.empty((len(rows), k), dtype=np.int64)
    sims = np.empty((len(rows), k))
    if not k:
        return ids, sims
    for s in range(0, len(rows), 512):
        part = rows[s : s + 512]
        S = np.asarray(X[part] @ X.T, dtype=np.float64)
        S[np.arange(len(part)), part] = -np.inf  # not its own neighbour
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        sim = np.take_along_axis(S, top, axis=1)
        order = np.argsort(-sim, axis=1, kind="stable")
        ids[s : s + len(part)] = np.take_along_axis(top, order, axis=1)
        sims[s : s + len(part)] = np.take_along_axis(sim, order, axis=1)
    return ids, sims


def smooth_graph(
    z: np.ndarray,
    cut: float,
    ids: np.ndarray,
    sims: np.ndarray,
    marks: Mapping[int, int] | np.ndarray,
    *,
    own: np.ndarray | None = None,
    softened: Sequence[float] | None = None,
    config: Smooth = Smooth(),
) -> np.ndarray:
    """:func:`smoothed` over precomputed neighbours (:func:`neighbours`, or a stored graph):
    ``z`` every photo's logit (positions ``ids`` refers to), ``ids`` / ``sims`` ``[n, k]``
    (most similar first; the first ``config.k`` columns are used) of the ``n`` photos to
    re-rank, ``marks`` position → 1 / 0 (or an array over the photos: 1, 0, NaN unmarked),
    ``own`` those photos' logits (default ``z[:n]``: every photo, in order; a mark's
    held-out logit, say). Returns their logits re-ranked; only those within ``config.width``
    of the cut move."""
    z = np.asarray(z, dtype=np.float64)
    out = (z[: len(ids)] if own is None else np.asarray(own, dtype=np.float64)).copy()
    if isinstance(marks, Mapping):
        label = np.full(len(z), np.nan)
        for i, y in marks.items():
            label[int(i)] = float(y)
    else:
        label = np.asarray(marks, dtype=np.float64)
    k = min(config.k, ids.shape[1]) if ids.ndim == 2 else 0
    zs = np.asarray(sharpen(out, softened))
    near = np.flatnonzero(np.abs(zs - float(sharpen(cut, softened))) < config.width)
    if not len(near) or not k:
        return out
    idx, sim = ids[near, :k], sims[near, :k]
    out[near] = smoothed(out[near], cut, z[idx], sim, label[idx], softened=softened, config=config)
    return out


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
    ids, sims = neighbours(X, config.k, rows[near])  # only those the re-rank moves
    out[near] = smooth_graph(
        z, cut, ids, sims, marks, own=out[near], softened=softened, config=config
    )
    return out
