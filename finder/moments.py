"""Moments of videos in answers: a search returns vector ids, photos' and frames' mixed; here
they become items (a photo, or a video scored by its best frame, that frame's time its moment)
and a moment is named as a person writes it (``clip.mp4@0:12``, ``--at 0:12``).

A video's sampled frames are rows of the catalog's ``frames`` table, each the key of a vector
(see :mod:`finder.store.frames`); nothing here decodes a video."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from finder.errors import Arg, UsageError
from finder.store.catalog import Catalog

_TIME = re.compile(r"^(?:(\d+):)??(?:(\d+):)?(\d+(?:\.\d*)?|\.\d+)$")


def parse_time(text: str | float, arg: str = "at") -> float:
    """Seconds from ``12``, ``12.5``, ``M:SS`` (``0:12``) or ``H:MM:SS`` (``1:02:03``); a
    one-line ``UsageError`` about ``arg`` otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
        if math.isfinite(value) and value >= 0:
            return value
        raise UsageError(Arg(arg), f" must be a time from the start, not {text!r}")
    m = _TIME.match(str(text).strip())
    if not m:
        raise UsageError(
            Arg(arg), f" takes seconds, M:SS or H:MM:SS (e.g. 12, 0:12, 1:02:03), not {text!r}"
        )
    hours, minutes, seconds = m.group(1), m.group(2), float(m.group(3))
    if minutes is not None and seconds >= 60:
        raise UsageError(Arg(arg), f": {text!r} has {seconds:g} seconds; write M:SS with SS < 60")
    if hours is not None and int(minutes or 0) >= 60:
        raise UsageError(Arg(arg), f": {text!r} has {minutes} minutes; write H:MM:SS")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + seconds


def format_time(seconds: float) -> str:
    """``0:12``, ``1:05``, ``1:02:03`` (whole seconds, rounded down): as a player shows it."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def moment_key(path: str, seconds: float) -> str:
    """How a frame marked for a class is named among its examples: ``/abs/clip.mp4@12.4``
    (seconds, to a tenth of a millisecond)."""
    return f"{path}@{round(float(seconds), 4):g}"


def split_moment(text: str) -> tuple[str, str] | None:
    """``("clip.mp4", "0:12")`` of ``clip.mp4@0:12`` when ``text`` is not itself an existing
    file and the part before the last ``@`` is one; else None."""
    if "@" not in text or os.path.lexists(os.path.expanduser(text)):
        return None
    path, _, when = text.rpartition("@")
    if not path or not when or not os.path.isfile(os.path.expanduser(path)):
        return None
    return path, when


@dataclass
class Items:
    """A ranking of vector ids grouped by item, best first: ``ids`` (photos' ids and videos'
    ids), ``keys`` (the vector standing for each: the photo's own, the video's best frame),
    ``scores`` (that vector's), and for each video its frames in the ranking, best first:
    ``moments[video id] = [(frame id, time, score), ...]``."""

    ids: np.ndarray
    keys: np.ndarray
    scores: np.ndarray
    moments: dict[int, list[tuple[int, float, float]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions: np.ndarray | slice) -> Items:
        ids = self.ids[positions]
        keep = {int(i) for i in ids}
        return Items(
            ids,
            self.keys[positions],
            self.scores[positions],
            {v: m for v, m in self.moments.items() if v in keep},
        )

    def time_of(self, item: int) -> float | None:
        found = self.moments.get(int(item))
        return found[0][1] if found else None


def group(catalog: Catalog, ids: np.ndarray, scores: np.ndarray) -> Items:
    """``ids`` (best first, with their ``scores``) grouped by item: a frame stands for its
    video, the video placed where its best frame is; its other frames are its moments."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores)
    frames = catalog.frame_rows(ids.tolist()) if len(ids) else {}
    if not frames:
        return Items(ids, ids.copy(), scores)
    items: list[int] = []
    keys: list[int] = []
    kept: list[float] = []
    moments: dict[int, list[tuple[int, float, float]]] = {}
    for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
        row = frames.get(i)
        if row is None:
            items.append(i)
            keys.append(i)
            kept.append(s)
            continue
        video, t = row
        if video not in moments:
            moments[video] = []
            items.append(video)
            keys.append(i)
            kept.append(s)
        moments[video].append((i, t, s))
    return Items(
        np.asarray(items, dtype=np.int64),
        np.asarray(keys, dtype=np.int64),
        np.asarray(kept, dtype=scores.dtype),
        moments,
    )
