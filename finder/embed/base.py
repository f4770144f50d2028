"""The interface every backbone implements: uint8 RGB pixels ``[n, h, w, 3]`` at its
``info.input_size`` → float32 vectors ``[n, dim]``, run on batches of fixed shape.

A batch of ``batch_size`` images, and for a smaller remainder the next power of two up to
``batch_size``, padded by repeating the last image. So a compiled function is traced at most
``log2(batch_size) + 1`` times, never per call, and a single query image does not pay for a
whole batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from finder.errors import BackboneError

if TYPE_CHECKING:
    from finder.embed.identity import BackboneInfo


def _buckets(batch_size: int, unit: int = 1) -> list[int]:
    """The batch shapes used: unit, 2*unit, 4*unit, ... below batch_size, then batch_size."""
    out, b = [], unit
    while b < batch_size:
        out.append(b)
        b *= 2
    out.append(batch_size)
    return out


class Backbone:
    """Base class: subclasses provide ``info``, ``preprocess`` and ``_run(batch of fixed n)``."""

    info: BackboneInfo
    batch_size: int
    gflops: float | None = None
    precision_reason: str | None = None  # why it computes in info.precision (e.g. "auto")
    _unit: int = 1  # batch shapes are multiples of this (the number of replicas)

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        """uint8 ``[n, h, w, 3]`` → float32: exactly what the model is fed."""
        raise NotImplementedError

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed batch whose size is one of ``_buckets``."""
        raise NotImplementedError

    def _check(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        w, h = self.info.input_size
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise BackboneError(
                f"{self.info.name} expects images of shape [n, {h}, {w}, 3], got {batch.shape}"
            )
        if batch.dtype != np.uint8:
            raise BackboneError(f"{self.info.name} expects uint8 pixels, got {batch.dtype}")
        return batch

    def embed(self, batch: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """uint8 ``[n, h, w, 3]`` (any n ≥ 1) → float32 ``[n, dim]``.

        Runs in chunks of ``batch_size`` (default ``self.batch_size``) images, the last one padded
        to the next fixed shape.
        """
        batch = self._check(batch)
        n = len(batch)
        out = np.empty((n, self.info.dim), dtype=np.float32)
        unit = self._unit
        full = max(unit, -(-int(batch_size or self.batch_size) // unit) * unit)
        buckets = _buckets(full, unit)
        start = 0
        while start < n:
            chunk = batch[start : start + full]
            m = len(chunk)
            size = next(b for b in buckets if b >= m)
            if size > m:  # pad with copies of the last image: fixed shapes, no retracing
                pad = np.repeat(chunk[-1:], size - m, axis=0)
                chunk = np.concatenate([chunk, pad])
            y = self._run(self.preprocess(chunk))
            out[start : start + m] = y[:m].reshape(m, -1)
            start += m
        return out

    def __repr__(self) -> str:
        return f"<Backbone {self.info.describe()} batch={self.batch_size}>"
