"""The library's metric (:mod:`finder.learn.metric`) kept in its folder (a part of
:mod:`finder.teach`): derived from the vectors, read once per process while the file is
unchanged, computed again when missing, unreadable, of another backbone, or when the library
has grown or shrunk by a quarter since."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from finder.embed.identity import identity_key as _backbone_key
from finder.folder import Folder
from finder.learn.metric import MIN_PHOTOS, Metric, sample_positions, whitener
from finder.store import files

METRIC_FILE = "metric.npz"
"""The file in the library's folder the metric is kept in."""


class MetricFile:
    """The metric of the library in ``folder``, from ``METRIC_FILE`` when it is still the
    library's. Keeps what it last read (by the file's stamp) and what it computed where it
    could not write (by the library's size and backbone)."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder
        self._read: tuple[tuple[int, int], tuple[int, str, Metric] | None] | None = None
        self._computed: tuple[tuple[int, str], Metric] | None = None

    def metric(self) -> Metric | None:
        """The library's metric; None below ``MIN_PHOTOS`` photos."""
        info = self.folder.require_indexed()
        store = self.folder.open_vectors()
        n, key = len(store), _backbone_key(info)
        if n < MIN_PHOTOS:
            return None
        path = self.folder.dir / METRIC_FILE
        kept = self._kept(path)
        if kept is not None:
            count, stored_key, metric = kept
            fits = metric.U.shape == (store.dim, store.dim) and metric.s.shape == (store.dim,)
            fits = fits and bool(np.isfinite(metric.U).all() and (metric.s > 0).all())
            if fits and stored_key == key and 0.8 * n <= count <= 1.25 * n:
                return metric
        if self._computed is not None and self._computed[0] == (n, key):
            return self._computed[1]  # a folder it could not be written into
        ids = np.sort(store.ids())
        metric = whitener(store.get(ids[sample_positions(n)]))
        buf = io.BytesIO()
        np.savez(buf, U=metric.U, s=metric.s, count=n, backbone=key)
        try:
            files.atomic_write(path, buf.getvalue())
        except OSError:  # a read-only folder: the metric is used, not kept
            self._computed = ((n, key), metric)
        return metric

    def _kept(self, path) -> tuple[int, str, Metric] | None:
        """``(count, backbone, metric)`` from the metric file, None when missing or damaged
        (derived data: computed again). Read once per process while the file is unchanged."""
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            memo = self._read
            if memo is not None and memo[0] == stamp:
                return memo[1]
            with np.load(path) as cached:
                metric = Metric(cached["U"], cached["s"])
                kept = (int(cached["count"]), str(cached["backbone"]), metric)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        self._read = (stamp, kept)
        return kept
