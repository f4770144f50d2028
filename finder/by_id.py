"""A library by image id: photos, their neighbours, their scores and marks, for the web page."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finder import roots
from finder.answers import Answers, Match
from finder.embed.identity import identity_key as _backbone_key
from finder.errors import Arg, UnknownImage, UsageError
from finder.folder import Folder
from finder.ingest.decode import PHOTO_FORMATS
from finder.ingest.files import open_regular
from finder.ingest.video import stream_kind
from finder.learn.head import Head, sigmoid
from finder.learn.names import class_name
from finder.learn.origin import TOP
from finder.moments import moment_key
from finder.roots import Offline
from finder.store.catalog import FAILED, OK, PENDING, ImageRow
from finder.store.thumbs import ThumbCache, render
from finder.teach import Change, Mark, Teaching

#: Formats a browser shows as they are; any other photo is sent as a JPEG made from it.
BROWSER_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png"}
BROWSER_FORMATS |= {"GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp"}
DISPLAY_SIZE = 1536  # short side of the JPEG sent for a photo a browser cannot show


@dataclass(frozen=True)
class BrowserPhoto:
    """A photo as a browser is sent it: ``path``, its own file, when browsers show its format;
    else ``jpeg``, a JPEG made from it (short side ``DISPLAY_SIZE``)."""

    media_type: str
    path: str | None = None
    jpeg: bytes | None = None


def browser_photo(row: ImageRow) -> BrowserPhoto:
    """The photo of ``row`` as a browser is sent it. Reads the photo's file only (any thread
    may call it); ``DecodeError`` when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    with open_regular(row.path) as f:
        try:
            with Image.open(f, formats=PHOTO_FORMATS) as im:
                kind = str(im.format)
        except (UnidentifiedImageError, OSError, ValueError):
            kind = "other"
    if kind in BROWSER_FORMATS:
        return BrowserPhoto(BROWSER_FORMATS[kind], path=row.path)
    return BrowserPhoto("image/jpeg", jpeg=render(row.path, DISPLAY_SIZE, 90))


@dataclass(frozen=True)
class Changes:
    """What changed in the library's answers after the moment ``since``
    (:meth:`ById.changes_since`): ``added``, the photos embedded since (new, or changed and
    embedded again), oldest first; ``classes``, which of them each class finds now (a video by
    the moment it is found at, its best: :meth:`~finder.teach.Teaching.hits`); ``counts``
    (``ok``, ``pending``, ``failed``) as they are. ``stamp`` is the moment they go up to, the
    next call's ``since``; ``complete`` False: more changed than one answer holds, or some are
    not in the read-only vectors yet (they come after ``refresh``): ask again soon."""

    stamp: float
    added: list[int]
    classes: dict[str, list[int]]
    counts: dict[str, int]
    complete: bool = True


#: Video codecs browsers play, by container (FFmpeg's demuxer name), with the media type the
#: file is served as; anything else (MJPEG in AVI, MPEG-TS, HEVC, MPEG-4 part 2) is shown as
#: stills. Chromium, Firefox and Safari all play H.264 in MP4 and VP8/VP9/AV1 in WebM.
PLAYABLE = {
    "mov,mp4,m4a,3gp,3g2,mj2": ({"h264", "av1", "vp9"}, "video/mp4"),
    "matroska,webm": ({"vp8", "vp9", "av1"}, "video/webm"),
}


@dataclass(frozen=True)
class Moment:
    """A frame of a video on the page: its id (its vector's), its time, and the classes it
    matches (at or above their cut-off)."""

    frame: int
    time: float
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class VideoView:
    """What the page needs to show video ``row``: ``media_type`` when a browser can play it
    (None: it shows ``moments`` as stills), the moment asked for (``frame``, ``time``), and
    every sampled moment, in time order."""

    row: ImageRow
    media_type: str | None
    frame: int
    time: float
    moments: tuple[Moment, ...]


def browser_video(row: ImageRow) -> str | None:
    """The media type the video of ``row`` is served as when browsers play it, else None.
    Reads its header only (any thread may call it)."""
    from finder.errors import DecodeError

    try:
        container, codec = stream_kind(row.path)
    except DecodeError:
        return None
    codecs, media_type = PLAYABLE.get(container, (set(), ""))
    return media_type if codec in codecs else None


class ById:
    """The library in ``folder`` by image id: what ``finder serve`` needs. Images are named by
    id, never by a path taken from the caller; ✓ and ✗ teach ``teaching`` by id; ``answers``
    ranks; ``thumbs`` holds the thumbnails."""

    def __init__(
        self, folder: Folder, teaching: Teaching, answers: Answers, thumbs: ThumbCache
    ) -> None:
        self.folder = folder
        self.teaching = teaching
        self.answers = answers
        self.thumbs = thumbs

    def image(self, image_id: int) -> ImageRow:
        """The catalog row of an indexed (status ok) image; ``UnknownImage`` otherwise."""
        row = self.folder.open_catalog().image(image_id) if self.folder.exists else None
        if row is None or row.status != OK:
            raise UnknownImage(f"no indexed image has the id {image_id}")
        return row

    def item(self, key: int) -> tuple[ImageRow, int | None, float | None]:
        """What an id on the page names: an indexed photo (``(row, None, None)``), a video's
        frame (``(the video's row, frame id, time)``), or a video (its first frame).
        ``UnknownImage`` otherwise."""
        catalog = self.folder.open_catalog() if self.folder.exists else None
        found = catalog.frame_rows([key]) if catalog is not None else {}
        if key in found:
            video, t = found[key]
            return self.image(video), int(key), t
        row = self.image(key)
        frames = catalog.frames_of(row.id) if catalog is not None else []
        if frames:
            return row, frames[0][0], frames[0][1]
        return row, None, None

    def video_view(self, key: int) -> VideoView | None:
        """The video that ``key`` names (itself or one of its frames) as the page shows it, or
        None for a photo."""
        row, frame, t = self.item(key)
        if frame is None or t is None:
            return None
        frames = self.folder.open_catalog().frames_of(row.id)
        ids = np.asarray([f for f, _ in frames], dtype=np.int64)
        x = self.folder.open_vectors().get(ids)
        matched: list[list[str]] = [[] for _ in frames]
        key_ = _backbone_key(self.folder.require_indexed())
        for record in self.teaching.classes():
            if record["backbone"] != key_:
                continue
            head = Head.from_dict(record["head"])
            for k in np.flatnonzero(head.proba(x) >= head.threshold):
                matched[int(k)].append(record["name"])
        moments = tuple(Moment(f, ft, tuple(m)) for (f, ft), m in zip(frames, matched, strict=True))
        return VideoView(row, browser_video(row), frame, t, moments)

    def browse(self, offset: int = 0, limit: int = 100) -> tuple[int, list[Match]]:
        """(number of indexed images, ``limit`` of them from ``offset``, by id; score 0)."""
        if not self.folder.exists:
            return 0, []
        catalog = self.folder.open_catalog()
        total, rows = catalog.ok_page(max(0, offset), max(0, limit))
        kinds = catalog.kinds([i for i, _ in rows])
        return total, [Match(path, 0.0, i, kind=kinds.get(i) or "photo") for i, path in rows]

    def last_change(self) -> float:
        """The moment (catalog time) up to which this library's answers are current: its last
        embedding, or when its read-only vectors were opened, if that was before. A page
        shown now asks ``changes_since`` it."""
        if not self.folder.exists:
            return 0.0
        last = self.folder.open_catalog().last_ok_update()
        cover = self.folder.vectors_cover()
        return last if cover is None else min(last, cover)

    def changes_since(self, since: float, limit: int = 500) -> Changes:
        """The photos embedded after ``since`` (at most ``limit``, whole commits), which of
        them each class finds (scored by every class at once), and the counts: index ranges
        and a product of a few vectors with the heads, never a search of the library."""
        if not self.folder.exists:
            return Changes(since, [], {}, {OK: 0, PENDING: 0, FAILED: 0})
        catalog = self.folder.open_catalog()
        rows = catalog.ok_since(since, limit + 1)
        complete = len(rows) <= limit
        if not complete:  # whole commits only: the moment of the first one left out
            last = rows[limit][1]
            rows = [r for r in rows if r[1] < last] or catalog.ok_at(last)
        cover = self.folder.vectors_cover()
        if cover is not None and rows and rows[-1][1] > cover:
            rows = [r for r in rows if r[1] <= cover]  # the rest after the next refresh
            complete = False
        ids = [i for i, _ in rows]
        stamp = rows[-1][1] if rows else since
        hits = self.teaching.hits(ids, self.answers.neighbours.rerank)  # as find ranks them
        return Changes(stamp, ids, hits, catalog.counts(), complete)

    def offline(self, image_id: int) -> Offline | None:
        """The offline root (or disk mounted in one) indexed image ``image_id`` is on, when its
        file is not there now because of it (:mod:`finder.roots`); None otherwise."""
        row = self.image(image_id)
        if os.path.lexists(row.path):
            return None
        for part in roots.offline(self.folder.open_catalog()):
            if roots.under(row.path, part.path):
                return part
        return None

    def similar_to_id(self, image_id: int, *, top: int = 20) -> list[Match]:
        """The ``top`` indexed images nearest to indexed image ``image_id``, best first."""
        if top < 1:
            raise UsageError(Arg("top"), " must be at least 1")
        row, frame, _ = self.item(image_id)
        key = frame if frame is not None else row.id
        ids = np.asarray([key], dtype=np.int64)
        store = self.folder.open_vectors()
        if not store.has(ids)[0]:
            raise UnknownImage(f"no indexed image has the id {image_id}")
        exclude = [row.id, key]
        if frame is not None:  # a video's moment: the video itself is left out
            exclude += self.folder.open_catalog().frame_ids_of([row.id])
        return self.answers.similar_to_vector(store.get(ids)[0], exclude, top=top)

    def class_scores(self, image_id: int) -> list[tuple[str, float, int | None]]:
        """For each class learned with this library's backbone: (name, probability of indexed
        image ``image_id``, its mark: 1 an example, 0 a counter-example, None unmarked)."""
        row, frame, t = self.item(image_id)
        records = self.teaching.classes()
        if not records:
            return []
        key = _backbone_key(self.folder.require_indexed())
        vector_id = frame if frame is not None else row.id
        x = self.folder.open_vectors().get(np.asarray([vector_id], dtype=np.int64))
        path = moment_key(row.path, t) if t is not None else row.path
        catalog = self.folder.open_catalog()
        out = []
        for record in records:
            if record["backbone"] != key:
                continue
            head = Head.from_dict(record["head"])
            z = self.answers.neighbours.rerank(
                record["name"], head, np.asarray([vector_id]), head.logits(x)
            )
            prob = float(sigmoid(z)[0])  # as find ranks it (re-ranked near the cut)
            mark = catalog.example_label(record["name"], path)
            out.append((record["name"], prob, mark))
        return out

    def learn_ids(
        self,
        name: str,
        add: Sequence[int] = (),
        not_: Sequence[int] = (),
        undo: Sequence[int] = (),
        *,
        seed: int = 0,
    ) -> dict:
        """Teach class ``name`` by image id: ``add`` are of the class (✓), ``not_`` are not
        (✗), and the marks of ``undo`` are taken back; the class is trained again once (one
        :class:`~finder.teach.Change`, the vectors of the marked photos read by id). All or
        nothing: a bad id or an impossible request raises before anything changes."""
        name = name.strip()
        add_ids, not_ids, undo_ids = (list(dict.fromkeys(map(int, i))) for i in (add, not_, undo))
        if set(add_ids) & set(not_ids):
            raise UsageError("a photo cannot be both of the class and not of it")
        if set(undo_ids) & set(add_ids + not_ids):
            raise UsageError("a photo cannot be marked and unmarked at once")
        add_rows, not_rows, undo_rows = (
            [self._markable(i) for i in ids] for ids in (add_ids, not_ids, undo_ids)
        )
        undo_paths = [path for _, path in undo_rows]
        if undo_paths:
            marked = {p for p, _ in self.teaching.examples(name)}
            unmarked = [i for i, p in zip(undo_ids, undo_paths, strict=True) if p not in marked]
            if unmarked:
                raise UsageError(f"photo {unmarked[0]} is not marked for class {name!r}")
        name = class_name(name)
        self.folder.require_indexed()
        marks = [Mark(i, path, 1, origin=TOP) for i, path in add_rows]  # a photo the page showed
        marks += [Mark(i, path, 0, origin=TOP) for i, path in not_rows]
        record = self.teaching.apply(Change(name, tuple(marks), tuple(undo_paths), seed=seed))
        assert record is not None
        return record

    def _markable(self, key: int) -> tuple[int, str]:
        """(vector id, example path) of what a ✓ or ✗ on ``key`` marks: a photo, or a video's
        frame (``moment_key``: the video's path and the frame's time)."""
        row, frame, t = self.item(key)
        if frame is None or t is None:
            return row.id, row.path
        return frame, moment_key(row.path, t)

    def thumbnail(self, image_id: int) -> Path:
        """The thumbnail file (JPEG, short side about 256 px, EXIF-oriented) of an indexed
        image or of a video's frame, made now when missing. ``DecodeError`` when the photo
        cannot be read."""
        row, frame, t = self.item(image_id)
        if frame is not None and t is not None:
            return self.thumbs.frame(row, frame, t)
        return self.thumbs.get(row)
