"""What a teaching change is taught from (a part of :mod:`finder.teach`): the photos that
example paths name (a file, a folder's photos that can be read, a video's moment ``clip.mp4@0:12``
as its indexed frame), the marks a ``--drop`` names, and the photos a filed class's filing gives
(:mod:`finder.store.filing`), less those the person marked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from finder.errors import Arg, DecodeError, UsageError
from finder.folder import Folder
from finder.ingest import crawl, decode
from finder.learn.train import DEFAULT_CONFIG
from finder.moments import moment_key, parse_time, split_moment
from finder.store.catalog import OK
from finder.store.filing import FiledDraw, FilingRecord

FILED_HEAD = replace(
    DEFAULT_CONFIG,
    rank_top=0,
    marks_cv=0,
    raise_at=1.0,
    rank_sample=False,
    warm_start=True,
)
"""How a class made from filing is trained (``finder.learn.train``'s method, five settings
changed). Its filed photos are a random sample of the class, not marks picked near its edge: the
class size is read from the median held-out rank of all of them (``rank_top=0``, unbiased for
random examples), and the head is not calibrated on the cross-validated logits of the filed
photos against their siblings' (``marks_cv=0``): those say how well two filed classes part, not
how much of the library is of the class (with two species filed, daisy's recall fell to 0.01).
Measured on tf_flowers' own heads (the bench's draws): 25% filed, mean F1 0.873 → 0.892, a third
less CPU; two species filed, daisy R 0.51 → 0.82 at P 0.93 (``scripts/bench_filed.py``).

The count of the class (past logit 0 of a sharper head) falls short for a class with
look-alikes (tf_flowers' daisy, dandelion and tulip by 10-25%, so their cut was high: recall
0.65-0.85 at precision 0.95-0.99), while dozens of filed photos, held out, are a sample of the
class's ranks and not five draws: the size is the geometric mean of the two as soon as twice
their median rank passes the count (``raise_at=1``, not only past twice the count). Measured in
the bench's protocol, 3 draws of the filed photos each, mean F1: tf_flowers 25% +0.005 to
+0.007, 10% +0.007 to +0.018, two species +0.004 to +0.013, ECE lower; the combined library 25%
-0.004 to +0.004, 10% -0.006 to +0.011, two species +0.005 to +0.013.

Its size is read as above, not by the rule for marks whose origin is known (``rank_sample``:
the ranks of the sample's positives with the other marked photos, here the siblings' filed
photos, counted where they rank): with that rule the combined library's mean F1 fell from
0.838 to 0.806 at 25% filed and from 0.733 to 0.681 at 10%, and daisy's precision with two
species filed to 0.82 (one run of ``scripts/bench_filed.py`` each, the same draws).

One setting for speed (issue 25's scale: thousands of filed classes): the first head's fit
starts from the probe's weights (``warm_start``: the same convex problem, fewer evaluations).
Reading the median held-out rank from the first folds only (until 40 filed photos are ranked:
two of the five probe fits for a class of 100) saved a third of a head's CPU more but cost the
two-species case: a noisier median raises the size more often (the raise rule is one-sided):
daisy's or dandelion's precision fell in 5 of 6 runs, mean F1 -0.012 (combined library) and
-0.014 (tf_flowers), 3 draws each (docs/heads.md, "Speed"); not taken."""


class ExamplePaths:
    """The photos example paths name in the library in ``folder`` (its catalog: which are
    indexed, a video's frames); skipped photos are named in ``folder.messages``."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    def marked_paths(self, name: str, marked: Sequence[str], photos: Sequence[str]) -> list[str]:
        """The paths among ``marked`` (class ``name``'s examples and counter-examples) that
        ``photos`` name: a photo's path (it need not exist any more), or a folder holding marked
        photos. ``UsageError`` for one that names none."""
        out: list[str] = []
        for photo in photos:
            given = os.fspath(photo)
            if not given:
                raise UsageError(Arg("drop"), " needs a photo, not an empty path")
            wanted = {os.path.abspath(os.path.expanduser(given))}
            wanted.add(os.path.realpath(next(iter(wanted))))
            found = [
                p
                for p in marked
                if p in wanted or any(p.startswith(w.rstrip(os.sep) + os.sep) for w in wanted)
            ]
            if not found:
                raise UsageError(
                    Arg("drop"), f" {given}: not an example or counter-example of {name!r}"
                )
            out.extend(found)
        return list(dict.fromkeys(out))

    def example_paths(self, examples: Sequence[str], name: str) -> dict[str, int | None]:
        """The photos ``examples`` name, each with None: a file as given, a folder's photos (in
        its sub-folders too) those that can be read; each skipped one is named in
        ``folder.messages``. A folder with no photo that can be read is refused unless class
        ``name`` has examples already. A video's moment (``clip.mp4@0:12``) is named by
        ``moment_key``, with its indexed frame's id (the frame nearest that time)."""
        out: list[str] = []
        frames: dict[str, int | None] = {}
        for ex in examples:
            moment = split_moment(os.fspath(ex))
            if moment is not None:
                key = self.moment_of(*moment)
                frames[key] = self.moment(key)
                out.append(key)
                continue
            path = os.path.abspath(os.path.expanduser(os.fspath(ex)))
            if os.path.isdir(path):
                found = [f.path for f in crawl.walk([path]) if not f.is_dir]
                if not found:
                    raise UsageError(f"no photos in the folder {ex}")
                readable, skipped = self.readable(found)
                if not readable and not self._has_examples(name):
                    more = f", and {len(skipped) - 1} more" if len(skipped) > 1 else ""
                    raise UsageError(
                        f"no photo in the folder {ex} can be read ({skipped[0]}{more}): "
                        f"learning {name!r} needs at least one example photo"
                    )
                self.folder.messages.extend(f"skipped {why}" for why in skipped)
                out.extend(readable)
            elif os.path.exists(path):
                if crawl.is_video_name(path):
                    raise UsageError(
                        f"{ex} is a video: teach with one of its moments, written {ex}@0:12"
                    )
                out.append(path)
            else:
                raise UsageError(f"no such file: {ex}")
        return {p: frames.get(p) for p in out}

    def moment_of(self, video: str, when: str | float) -> str:
        """The example key (``moment_key``) of the indexed frame of ``video`` nearest the time
        ``when``: frames are taught from their stored vectors, a video is never decoded."""
        try:
            seconds = parse_time(when)
        except UsageError:
            raise UsageError(
                f"{video}@{when}: a moment's time is seconds, M:SS or H:MM:SS (e.g. 0:12)"
            ) from None
        path = os.path.abspath(os.path.expanduser(os.fspath(video)))
        catalog = self.folder.open_catalog()
        row = catalog.image_by_path(path)
        frames = catalog.frames_of(row.id) if row is not None and row.status == OK else []
        if not frames:
            raise UsageError(
                f"{video} is not an indexed video: index it first, then teach with its moments"
            )
        _, t = min(frames, key=lambda f: (abs(f[1] - seconds), f[1]))
        return moment_key(path, t)

    def moment(self, key: str) -> int | None:
        """The frame id an example key names (``moment_key``), None when it names none now."""
        path, _, when = key.rpartition("@")
        if not path:
            return None
        catalog = self.folder.open_catalog()
        row = catalog.image_by_path(path)
        if row is None or row.status != OK:
            return None
        try:
            t = float(when)
        except ValueError:
            return None
        for frame, ft in catalog.frames_of(row.id):
            if abs(ft - t) < 1e-3:
                return frame
        return None

    def readable(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """``paths`` less the photos that cannot be read, and for each of those its path and
        why: an indexed photo is read from the store; another is decoded (small: it is cheap)."""
        catalog = self.folder.open_catalog()
        readable, skipped = [], []
        for path in paths:
            row = catalog.image_by_path(path)
            if row is None or row.status != OK:
                try:
                    decode.load_rgb(path, (32, 32))
                except DecodeError as e:
                    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
                    skipped.append(f"{shown}: {e}")
                    continue
            readable.append(path)
        return readable, skipped

    def _has_examples(self, name: str) -> bool:
        return any(e.label == 1 for e in self.folder.open_catalog().examples(name))


def filed_ids(
    catalog: Any,
    filing: FilingRecord | None,
    existing: Sequence[Any],
    marks: Sequence[Any],
    seed: int,
    drawn: FiledDraw | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(examples, counter-examples) by id that a class's ``filing`` gives, less the photos the
    person marked, in ``existing`` (the catalog's examples kept) and ``marks`` (given now):
    their marks win. None without a filing. Drawn from ``drawn`` (the filed photos one run
    read once) when it holds the class's keys, else from the catalog: the same ids."""
    if filing is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    marked: dict[int, int] = {}
    for e in existing:
        row = catalog.image_by_path(e.path)
        if row is not None:
            marked[int(row.id)] = e.label
    for m in marks:
        mid = m.id
        if mid is None and (row := catalog.image_by_path(m.path)) is not None:
            mid = row.id
        if mid is not None:
            marked[int(mid)] = m.label
    if drawn is not None and drawn.covers(filing):
        return drawn.filed_ids(filing, marked, seed)
    return catalog.filed_ids(filing, marked, seed)
