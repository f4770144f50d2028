"""The thumbnail cache: one small JPEG per indexed image, in the library folder.

``LIBRARY/thumbs/<id // 1000>/<id>-<size>-<mtime_ns>.jpg``: sharded so that no folder holds more
than a thousand files, and named after the file's size and modification time as the catalog
records them, so a changed image never shows its old thumbnail (the index run re-embeds an image
exactly when its size or mtime changes). A video's are its frames' (``frames/``, by frame id).
A thumbnail is made on demand (``get``, ``frame``), or for many images at once during an index
run (``make_many``, ``finder index --thumbnails``); ``sweep`` (at the end of each index run and
in ``finder repair``) drops those whose image or frame changed or left the library.

A thumbnail is the draft (DCT-scaled) decode of ``finder.ingest.decode`` with the EXIF
orientation applied, aspect kept, its short side ``SIZE`` pixels (its long side at most
``MAX_ASPECT`` times that: panoramas are scaled down further). Writes are atomic (a temporary
file renamed into place), so readers never see half a thumbnail.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from finder.errors import DecodeError
from finder.ingest.decode import load_rgb
from finder.ingest.video import load_still
from finder.store.catalog import ImageRow

SIZE = 256  # short side, pixels
MAX_ASPECT = 3.0  # the long side is at most this many times SIZE
QUALITY = 80  # JPEG quality: about 15 KB a thumbnail
SHARD = 1000  # images per folder
_NAME = re.compile(r"^(\d+)-(\d+)-(-?\d+)\.jpg$")

StampsFn = Callable[[int, int], Iterable[ImageRow]]
FrameStampsFn = Callable[[int, int], Iterable[tuple[int, int, int]]]
FramesFn = Callable[[Sequence[int]], Mapping[int, Sequence[tuple[int, float]]]]


def render(
    path: str, size: int = SIZE, quality: int = QUALITY, seconds: float | None = None
) -> bytes:
    """The JPEG bytes of the thumbnail of ``path`` (a video's frame at ``seconds``, when
    given); ``DecodeError`` when it cannot be read."""
    if seconds is not None:
        rgb = load_still(path, seconds, size)
    else:
        rgb = load_rgb(path, (size, size), cover=1.0)
    im = Image.fromarray(rgb)
    longest = max(im.size)
    if longest > MAX_ASPECT * size:
        scale = MAX_ASPECT * size / longest
        im = im.resize(
            (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
            Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


class ThumbCache:
    """Thumbnails of the images of one library, under ``directory``."""

    def __init__(self, directory: str | os.PathLike, *, size: int = SIZE) -> None:
        self.dir = Path(directory)
        self.size = int(size)

    def file_for(self, row: ImageRow) -> Path:
        """Where the thumbnail of ``row`` (as the catalog has it now) lives."""
        return self.dir / str(row.id // SHARD) / _name(row.id, row.size, row.mtime_ns)

    @staticmethod
    def stamp(row: ImageRow) -> str:
        """A short tag that changes whenever the thumbnail of ``row`` would (an HTTP ETag)."""
        return f"{row.id}-{row.size}-{row.mtime_ns}"

    def cached(self, row: ImageRow) -> Path | None:
        path = self.file_for(row)
        return path if path.is_file() else None

    def get(self, row: ImageRow) -> Path:
        """The thumbnail file of ``row``, made now when missing or stale."""
        return self.cached(row) or self.make(row)

    def make(self, row: ImageRow) -> Path:
        """Decode ``row``'s image, write its thumbnail, drop any older one of the same id."""
        target = self.file_for(row)
        _write(target, render(row.path, self.size))
        self._drop_others(row.id, keep=target.name)
        return target

    # A video's moments: ``frames/<frame id // 1000>/<frame id>-<size>-<mtime_ns>.jpg`` (a
    # changed video's frames get new ids, so a stale one is never shown; ``sweep`` drops it).
    def frame_file(self, row: ImageRow, frame: int) -> Path:
        """Where the thumbnail of frame ``frame`` of video ``row`` lives."""
        return self.dir / "frames" / str(frame // SHARD) / _name(frame, row.size, row.mtime_ns)

    def frame(self, row: ImageRow, frame: int, seconds: float) -> Path:
        """The thumbnail of the frame ``frame`` of video ``row`` (at ``seconds``), made now
        when missing."""
        target = self.frame_file(row, frame)
        if not target.is_file():
            _write(target, render(row.path, self.size, seconds=seconds))
        return target

    def _drop_others(self, image_id: int, keep: str | None = None) -> int:
        shard = self.dir / str(image_id // SHARD)
        dropped = 0
        try:
            names = os.listdir(shard)
        except FileNotFoundError:
            return 0
        prefix = f"{image_id}-"
        for name in names:
            if name.startswith(prefix) and name != keep and _NAME.match(name):
                (shard / name).unlink(missing_ok=True)
                dropped += 1
        return dropped

    def drop(self, ids: Iterable[int]) -> int:
        """Delete the thumbnails of ``ids``; returns how many files went."""
        return sum(self._drop_others(int(i)) for i in ids)

    def sweep(self, rows_between: StampsFn, frames_between: FrameStampsFn | None = None) -> int:
        """Delete every thumbnail whose image is no longer an ok image of the catalog, or has
        changed since, and (with ``frames_between``) every frame's thumbnail whose frame is no
        longer one or whose video has changed; also what a killed write left (a temporary file
        older than a minute). ``rows_between(lo, hi)`` gives the ok rows with ``lo <= id < hi``;
        ``frames_between(lo, hi)`` the (frame id, its video's size, mtime_ns) of the frames
        with ``lo <= frame id < hi``. Returns how many files went."""
        dropped = self._sweep(
            self.dir, lambda lo, hi: {self.file_for(r).name for r in rows_between(lo, hi)}
        )
        if frames_between is not None:
            dropped += self._sweep(
                self.dir / "frames",
                lambda lo, hi: {_name(*stamp) for stamp in frames_between(lo, hi)},
            )
        return dropped

    @staticmethod
    def _sweep(folder: Path, names_between: Callable[[int, int], set[str]]) -> int:
        """Delete the thumbnails in the shards of ``folder`` not named in ``names_between``
        (the names to keep in the shard of ids ``lo <= id < hi``)."""
        if not folder.is_dir():
            return 0
        dropped = 0
        old = time.time() - 60
        for shard in os.scandir(folder):
            if not (shard.is_dir() and shard.name.isdigit()):
                continue
            lo = int(shard.name) * SHARD
            keep = names_between(lo, lo + SHARD)
            for entry in os.scandir(shard.path):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    stale = _mtime(entry) < old  # a write in flight is younger
                else:
                    stale = bool(_NAME.match(entry.name)) and entry.name not in keep
                if stale:
                    Path(entry.path).unlink(missing_ok=True)
                    dropped += 1
        return dropped

    def make_many(
        self,
        rows: Iterable[ImageRow],
        *,
        frames: FramesFn | None = None,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Make the missing thumbnails of ``rows`` in a thread pool (Pillow decodes without the
        GIL): a photo's, and a video's frames' (``frames(ids)`` gives the frames, (frame id,
        time), of the videos among ``ids``: what the page shows for a video). Returns (made,
        failed), counting items (a video is one); ``progress(done)`` is called as they
        complete."""
        made = failed = done = 0

        def one(job: tuple[ImageRow, Sequence[tuple[int, float]] | None]) -> bool:
            row, moments = job
            try:
                if moments is None:
                    self.make(row)
                for frame, seconds in moments or ():
                    self.frame(row, frame, seconds)
                return True
            except (DecodeError, OSError):
                return False

        # In chunks, so that Ctrl-C waits for one chunk, not for every image of the library.
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for chunk in _chunks(rows, CHUNK):
                for ok in pool.map(one, self._missing(chunk, frames)):
                    made += ok
                    failed += not ok
                    done += 1
                    if progress:
                        progress(done)
        return made, failed

    def _missing(
        self, rows: list[ImageRow], frames: FramesFn | None
    ) -> list[tuple[ImageRow, list[tuple[int, float]] | None]]:
        """What of ``rows`` lacks a thumbnail: (a photo's row, None), (a video's row, its frames
        that lack one)."""
        videos = frames([r.id for r in rows]) if frames is not None else {}
        out: list[tuple[ImageRow, list[tuple[int, float]] | None]] = []
        for row in rows:
            if row.id in videos:
                todo = [m for m in videos[row.id] if not self.frame_file(row, m[0]).is_file()]
                if todo:
                    out.append((row, todo))
            elif self.cached(row) is None:
                out.append((row, None))
        return out


CHUNK = 64


def _name(key: int, size: int, mtime_ns: int) -> str:
    """The file name of the thumbnail of image (or frame) ``key`` of a file of this size and
    modification time."""
    return f"{key}-{size}-{mtime_ns}.jpg"


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone already


def _write(target: Path, data: bytes) -> None:
    """Write ``data`` at ``target`` atomically (a temporary file renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _chunks(items: Iterable[ImageRow], n: int) -> Iterable[list[ImageRow]]:
    chunk: list[ImageRow] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
