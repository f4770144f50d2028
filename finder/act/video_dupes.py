"""Near-duplicate videos: the same clip re-encoded (another codec, bitrate, size or
container), found where their sampled frames line up. Finds; never deletes anything.

A video holds no vector of its own: its sampled frames do, each with its time (see
:mod:`finder.store.frames`). Two videos are near-duplicates when

1. their durations agree (within ``DURATION_SLACK``: half a second, or 2 % of a long one);
2. the mean of their frames' vectors agree (cosine at least ``MIN_MEAN_COSINE``), a cheap
   first look;
3. their frames line up: every frame of each has a frame of the other within ``WINDOW``
   seconds whose vector is at least ``MIN_FRAME_COSINE`` alike (two encodings put their
   keyframes at different times, so the sampled frames are a few seconds apart at most).

The lowest of those best matches is the pair's similarity. Two different clips of one scene
(the cat on the same sofa, filmed twice) rarely last the same to half a second and match frame
for frame; a clip cut shorter, or a part of a longer one, is not a duplicate here.

Candidates are taken in order of duration, with only the videos within the slack of one
another held in memory (their frames' vectors), so a library's videos are compared in one
pass; a library of very many clips of one length compares each with each of them (the mean
vectors keep that cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from finder.store.catalog import Catalog
    from finder.store.vectors import VectorStore

DURATION_SLACK = (0.5, 0.02)  # seconds, or this share of the duration, whichever is larger
MIN_MEAN_COSINE = 0.90
MIN_FRAME_COSINE = 0.85
WINDOW = 3.0  # seconds between two frames that may show the same moment


def _slack(duration: float) -> float:
    return max(DURATION_SLACK[0], DURATION_SLACK[1] * duration)


def aligned(
    ta: np.ndarray, va: np.ndarray, tb: np.ndarray, vb: np.ndarray, window: float = WINDOW
) -> float:
    """How well two videos' frames line up: the lowest, over the frames of both, of the best
    cosine similarity with a frame of the other within ``window`` seconds (-1: some frame has
    none that near). ``ta``, ``tb``: times; ``va``, ``vb``: unit vectors, one row a frame."""
    near = np.abs(ta[:, None] - tb[None, :]) <= window
    sims = np.where(near, va @ vb.T, -1.0)
    return float(min(sims.max(axis=1).min(), sims.max(axis=0).min()))


def near_video_pairs(
    catalog: Catalog,
    store: VectorStore,
    video_ids: Sequence[int],
    *,
    min_cosine: float = MIN_FRAME_COSINE,
) -> dict[tuple[int, int], float]:
    """``{(a, b): similarity}`` (``a < b``) of the pairs among ``video_ids`` (ok videos) that
    are the same clip, as the module docstring says."""
    durations = catalog.durations([int(v) for v in video_ids])
    order = sorted((d, v) for v, d in durations.items() if d is not None)
    held: dict[int, tuple[float, np.ndarray, np.ndarray, np.ndarray]] = {}
    out: dict[tuple[int, int], float] = {}
    for duration, v in order:
        for other in [o for o, (d, *_) in held.items() if duration - d > _slack(d)]:
            del held[other]
        frames = catalog.frames_of(v)
        ids = np.asarray([f for f, _ in frames], dtype=np.int64)
        if not len(ids) or not store.has(ids).all():
            continue
        vectors = store.get(ids).astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        times = np.asarray([t for _, t in frames], dtype=np.float64)
        mean = vectors.mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        for o, (_, t_o, v_o, m_o) in held.items():
            if float(mean @ m_o) < MIN_MEAN_COSINE:
                continue
            score = aligned(times, vectors, t_o, v_o)
            if score >= min_cosine:
                out[(min(v, o), max(v, o))] = score
        held[v] = (duration, times, vectors, mean)
    return out
