"""Which frames of a video to embed: at scene changes and at a steady pace, under a cap.

A video is read at its keyframes only (``finder.ingest.video``): a keyframe decodes on its own,
and an encoder puts one at most scene cuts (x264, libvpx and phone encoders alike) and every
second or few. The :class:`Sampler` is told each keyframe's time and decides:

1. **Probe or skip** (:meth:`Sampler.wants`): a keyframe is decoded when at least ``gap``
   seconds passed since the last one decoded. ``gap`` starts at ``min_gap`` (1 s); after a
   probe that shows no change it doubles, up to the pace; after a change it is half the time
   since the change before (within ``min_gap`` and the pace): shots a second long are probed
   every second, calm footage about once per pace, so a phone clip with a keyframe every
   second costs one decode per pace, not one per second. A keyframe that comes sooner than the
   stream's rhythm (less than ``irregular`` times the median of the last intervals between
   keyframes) is always decoded: an encoder that puts a keyframe every few seconds puts the
   extra ones at scene cuts; so is an intra frame no keyframe mark names (x264's cut too soon
   after a keyframe), which the reader finds by its size.
2. **Keep or drop** (:meth:`Sampler.offer`): each probe comes with a small signature of its
   pixels (16x16 colours). It is kept as a *scene change* when it differs from the last kept
   frame by at least ``change`` (the mean absolute difference of the signatures, 0..1), or as
   a *pace* frame when ``pace`` seconds passed since the last kept one. The first is always
   kept.
3. **Cap** (:meth:`Sampling.cap`): at most ``cap_base + cap_rate * minutes ** cap_power``
   frames (12 s: 15; 1 min: 22; 10 min: 69; 1 hour: 228; 2 hours: 375), and the pace is
   stretched so that pace frames alone stay under it (an hour: one every 16 s). Over the cap,
   the first frame and the strongest scene changes are kept, then the pace frames that moved
   most. Frames are thinned as they come (at twice the cap), so a video holds at most twice
   its cap of decoded frames in memory.

The signature distance between two different photos of ../shared/photos was at least 0.115
(1st percentile 0.162) and between a photo and itself zoomed 5 % (a slow pan or zoom) at most
0.093: ``change`` is 0.10. A kept 1080p keyframe costs about 1.5 times a 1080p JPEG photo
(its decode 27 ms of CPU, the photo's 9 ms, the embedding 31 ms with the shared MobileNet), a
keyframe looked at and dropped 0.7: a pace of 6 s keeps a calm minute at about 15 photos' cost,
under the 20 a minute may cost (``scripts/bench_video.py``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

#: Side of the signature (pixels): 16x16 RGB, compared as values 0..1.
SIGNATURE = 16
_EPS = 0.01  # seconds: keyframe times on a grid of exactly ``gap`` apart count as ``gap``


@dataclass(frozen=True)
class Sampling:
    """How a video's frames are chosen (see the module docstring)."""

    min_gap: float = 1.0
    pace: float = 6.0
    change: float = 0.10
    cap_base: float = 12.0
    cap_rate: float = 10.0
    cap_power: float = 0.75
    irregular: float = 0.75

    def cap(self, duration: float | None) -> int:
        """The most frames a video of ``duration`` seconds gives (unknown: as for 1 min)."""
        minutes = max(0.0, duration if duration is not None else 60.0) / 60.0
        return max(1, math.ceil(self.cap_base + self.cap_rate * minutes**self.cap_power))

    def pace_for(self, duration: float | None) -> float:
        """Seconds between pace frames: ``pace``, stretched for long videos."""
        if duration is None or duration <= 0:
            return self.pace
        return max(self.pace, duration / self.cap(duration))


SAMPLING = Sampling()


def signature(pixels: np.ndarray) -> np.ndarray:
    """The 16x16 RGB means (0..1, float32) of a uint8 ``(h, w, 3)`` frame, by block averages
    over a grid of equal bands (the last ones take the remainder)."""
    a = np.asarray(pixels, dtype=np.float32)
    h, w = a.shape[:2]
    rows = np.linspace(0, h, SIGNATURE + 1).astype(int)
    cols = np.linspace(0, w, SIGNATURE + 1).astype(int)
    if h < SIGNATURE or w < SIGNATURE:  # tiny frames: nearest pixels
        return a[np.clip(rows[:-1], 0, h - 1)][:, np.clip(cols[:-1], 0, w - 1)] / 255.0
    sums = np.add.reduceat(np.add.reduceat(a, rows[:-1], axis=0), cols[:-1], axis=1)
    counts = np.outer(np.diff(rows), np.diff(cols))[:, :, None]
    return sums / counts / 255.0


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different two signatures are: mean absolute difference, 0 (same) to 1."""
    return float(np.abs(a - b).mean())


@dataclass
class Kept:
    """A frame kept so far: its time (s), pixels (whatever the reader decoded), why kept."""

    time: float
    pixels: np.ndarray
    signature: np.ndarray
    scene: bool  # a scene change (or the first frame), else a pace frame
    score: float  # how much it differed from the last kept frame


@dataclass
class Sampler:
    """The choice of frames of one video, fed keyframe by keyframe in time order."""

    duration: float | None
    policy: Sampling = SAMPLING
    kept: list[Kept] = field(default_factory=list)
    probes: int = 0

    def __post_init__(self) -> None:
        self.cap = self.policy.cap(self.duration)
        self.pace = self.policy.pace_for(self.duration)
        self.gap = self.policy.min_gap
        self.last_probe = -math.inf
        self.last_key = -math.inf
        self.last_change = -math.inf
        self.intervals: deque[float] = deque(maxlen=16)

    def wants(self, time: float, cut: bool = False) -> bool:
        """Whether the keyframe at ``time`` (seconds) should be decoded and offered; told
        every keyframe, in time order. ``cut``: an intra frame the encoder put outside its
        keyframes, which it does at scene cuts only: always wanted, and no keyframe of the
        stream's rhythm."""
        if cut:
            self.last_probe = time
            return True
        interval = time - self.last_key
        self.last_key = time
        irregular = (
            len(self.intervals) >= 2
            and interval < self.policy.irregular * float(np.median(self.intervals)) - _EPS
        )
        if math.isfinite(interval):
            self.intervals.append(interval)
        if irregular or time - self.last_probe >= self.gap - _EPS:
            self.last_probe = time
            return True
        return False

    def offer(self, time: float, pixels: np.ndarray, sig: np.ndarray | None = None) -> bool:
        """A keyframe ``wants`` asked for, decoded: its presentation time (seconds; ``wants``
        may have been told the time it is decoded at, a little earlier); returns whether it
        is kept (for now: the cap may drop it)."""
        sig = signature(pixels) if sig is None else sig
        self.probes += 1
        if not self.kept:
            self.kept.append(Kept(time, pixels, sig, True, math.inf))
            self.last_change = time
            return True
        last = self.kept[-1]
        score = distance(sig, last.signature)
        if score >= self.policy.change:
            shot = time - self.last_change  # how long the shot before lasted, about
            self.gap = min(self.pace, max(self.policy.min_gap, shot / 2))
            self.last_change = time
            self.kept.append(Kept(time, pixels, sig, True, score))
        else:
            self.gap = min(2 * self.gap, self.pace)
            if time - last.time < self.pace - _EPS:
                return False
            self.kept.append(Kept(time, pixels, sig, False, score))
        if len(self.kept) > 2 * self.cap:
            self.kept = thin(self.kept, self.cap)
        return True

    def frames(self) -> list[Kept]:
        """The frames chosen, in time order, at most ``cap``."""
        return thin(self.kept, self.cap)


def thin(kept: list[Kept], cap: int) -> list[Kept]:
    """At most ``cap`` of ``kept``, in time order: the first frame, then scene changes by how
    strong they are, then pace frames by how much they moved."""
    if len(kept) <= cap:
        return list(kept)
    order = sorted(
        range(len(kept)),
        key=lambda i: (i != 0, not kept[i].scene, -kept[i].score, kept[i].time),
    )
    return [kept[i] for i in sorted(order[:cap])]
