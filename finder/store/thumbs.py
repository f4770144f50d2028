"""The thumbnail cache: one small JPEG per indexed image, in the library folder.

``LIBRARY/thumbs/<id // 1000>/<id>-<size>-<mtime_ns>.jpg``: sharded so that no folder holds more
than a thousand files, and named after the file's size and modification time as the catalog
records them, so a changed image never shows its old thumbnail (the index run re-embeds an image
exactly when its size or mtime changes). A thumbnail is made on demand (``get``), or for many
images at once during an index run (``make_many``, ``finder index --thumbnails``); ``sweep``
drops those whose image changed or left the library.

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
from collections.abc import Callable, Iterable
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
        return self.dir / str(row.id // SHARD) / f"{row.id}-{row.size}-{row.mtime_ns}.jpg"

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

    # A video's moments: ``frames/<frame id // 1000>/<frame id>-<size>-<mtime_ns>.jpg`` (out of
    # ``sweep``'s way; a changed video's frames get new ids, so a stale one is never shown).
    def frame_file(self, row: ImageRow, frame: int) -> Path:
        """Where the thumbnail of frame ``frame`` of video ``row`` lives."""
        return self.dir / "frames" / str(frame // SHARD) / f"{frame}-{row.size}-{row.mtime_ns}.jpg"

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

    def sweep(self, rows_between: StampsFn) -> int:
        """Delete every thumbnail whose image is no longer an ok image of the catalog, or has
        changed since. ``rows_between(lo, hi)`` gives the ok rows with ``lo <= id < hi``."""
        if not self.dir.is_dir():
            return 0
        dropped = 0
        for shard in os.scandir(self.dir):
            if not (shard.is_dir() and shard.name.isdigit()):
                continue
            lo = int(shard.name) * SHARD
            keep = {self.file_for(r).name for r in rows_between(lo, lo + SHARD)}
            for entry in os.scandir(shard.path):
                stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
                if (stale_tmp or _NAME.match(entry.name)) and entry.name not in keep:
                    Path(entry.path).unlink(missing_ok=True)
                    dropped += 1
        return dropped

    def make_many(
        self,
        rows: Iterable[ImageRow],
        *,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Make the missing thumbnails of ``rows`` in a thread pool (Pillow decodes without the
        GIL). Returns (made, failed); ``progress(done)`` is called as they complete."""
        made = failed = done = 0

        def one(row: ImageRow) -> bool:
            try:
                self.make(row)
                return True
            except (DecodeError, OSError):
                return False

        # In chunks, so that Ctrl-C waits for one chunk, not for every image of the library.
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for chunk in _chunks((r for r in rows if self.cached(r) is None), CHUNK):
                for ok in pool.map(one, chunk):
                    made += ok
                    failed += not ok
                    done += 1
                    if progress:
                        progress(done)
        return made, failed


CHUNK = 64


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
