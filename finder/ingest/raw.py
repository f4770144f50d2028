"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...) through ``rawpy`` (LibRaw).

``open_raw(path, want, max_pixels)`` gives a :class:`RawPicture`: a Pillow image and the EXIF
orientation (1-8) still to apply to it, the developed size, the preview (for its EXIF):

- the camera's embedded preview when it is at least ``want`` (width, height) once oriented:
  most cameras store a full-size or a ~1-2 MP JPEG, which decodes in milliseconds (and by DCT
  scaling, since ``decode`` then treats it as any JPEG); a bitmap preview is used the same way;
- else a half-size demosaic (LibRaw's ``half_size``: each 2x2 Bayer block becomes one pixel,
  no interpolation), with the camera's white balance, already oriented by LibRaw.

The preview is stored unrotated; the orientation comes from the RAW file (LibRaw's ``flip``),
never from the preview's own EXIF. ``raw_facts`` reads the photo facts (date, camera, position)
from the file's TIFF header or the preview. ``rawpy`` is imported on the first RAW file. Every
failure is a ``DecodeError`` with a short reason.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np
from PIL import Image

from finder.errors import DecodeError
from finder.ingest.crawl import RAW_EXTENSIONS
from finder.ingest.facts import DATE_FILE, PhotoFacts, file_date, photo_facts

#: LibRaw's ``flip`` → EXIF orientation (LibRaw reads EXIF 1..8 as 0,1,3,2,4,6,7,5).
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def is_raw_name(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` ends with one of ``RAW_EXTENSIONS`` (case-insensitive)."""
    return os.path.splitext(os.fsdecode(path))[1].lower() in RAW_EXTENSIONS


def _rawpy():
    try:
        import rawpy
    except ImportError:
        raise DecodeError("RAW support missing (pip install rawpy)") from None
    return rawpy


@dataclass(frozen=True)
class RawPicture:
    """What ``open_raw`` gives: the picture to render and what is known about the shot."""

    image: Image.Image  # the embedded preview, or the half-size demosaic
    orientation: int  # EXIF orientation still to apply to ``image``
    size: tuple[int, int]  # (width, height) of the developed picture, as shown
    preview: Image.Image | None  # the embedded JPEG preview, when one was read (it has EXIF)


def _imread(rawpy, path: str | os.PathLike[str]):
    """LibRaw opened on ``path`` (its header read), or a ``DecodeError``."""
    try:
        return rawpy.imread(os.fsdecode(path))
    except UnicodeError:  # a name LibRaw cannot be given (not UTF-8): hand it the bytes
        with open(path, "rb") as f:
            try:
                return rawpy.imread(f)
            except (rawpy.LibRawError, rawpy.NotSupportedError) as e:
                raise DecodeError(_reason(rawpy, e)) from None
    except (rawpy.LibRawError, rawpy.NotSupportedError) as e:
        raise DecodeError(_reason(rawpy, e)) from None


def _shown_size(raw) -> tuple[tuple[int, int], int]:
    sizes = raw.sizes
    orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
    w, h = int(sizes.width), int(sizes.height)
    return ((h, w) if orientation in _SWAPS_AXES else (w, h)), orientation


def open_raw(path: str | os.PathLike[str], want: tuple[int, int], max_pixels: int) -> RawPicture:
    """The RAW file at ``path``, ready to render: its preview when at least ``want`` (width,
    height, after orientation), else a half-size demosaic. Raises ``DecodeError``
    ("decompression bomb" above ``max_pixels`` sensor pixels)."""
    rawpy = _rawpy()
    with _imread(rawpy, path) as raw:
        if raw.sizes.raw_width * raw.sizes.raw_height > max_pixels:
            raise DecodeError("decompression bomb")
        size, orientation = _shown_size(raw)
        preview = _preview(raw, rawpy)
        if preview is not None:
            w, h = preview.size
            if orientation in _SWAPS_AXES:
                w, h = h, w
            if w >= want[0] and h >= want[1]:
                return RawPicture(preview, orientation, size, preview)
        try:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except (rawpy.LibRawError, rawpy.NotSupportedError) as e:
            raise DecodeError(_reason(rawpy, e)) from None
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    jpeg = preview if preview is not None and preview.format == "JPEG" else None
    return RawPicture(image, 1, size, jpeg)  # LibRaw has oriented the demosaic


def _preview(raw, rawpy) -> Image.Image | None:
    """The embedded preview (JPEG opened lazily, or a bitmap), None when there is none."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, rawpy.NotSupportedError):
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            return Image.open(io.BytesIO(thumb.data), formats=("JPEG",))
        if thumb.format == rawpy.ThumbFormat.BITMAP:
            return Image.fromarray(np.ascontiguousarray(thumb.data[..., :3]), "RGB")
    except Exception:  # a broken preview: demosaic instead
        pass
    return None


def raw_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The (width, height) of a RAW file's developed picture, as shown; from its header."""
    with _imread(_rawpy(), path) as raw:
        return _shown_size(raw)[0]


def raw_facts(
    f: BinaryIO, size: tuple[int, int], preview: Image.Image | None, mtime_ns: int | None
) -> PhotoFacts:
    """The facts of a RAW file (``finder.ingest.facts``): EXIF from its TIFF header (most RAW
    formats are TIFF inside), else from its embedded JPEG preview, else only the file's date;
    the size is that of the developed picture, as shown."""
    source = preview
    try:
        f.seek(0)
        source = Image.open(f, formats=("TIFF",))
    except Exception:  # CR3, RAF, ORF, RW2, ...: not a TIFF that Pillow opens
        pass
    if source is not None:
        return replace(photo_facts(source, 1, mtime_ns), width=size[0], height=size[1])
    facts = PhotoFacts(width=size[0], height=size[1])
    if mtime_ns is None:
        return facts
    taken, offset = file_date(mtime_ns)
    return replace(facts, taken=taken, offset_minutes=offset, date_source=DATE_FILE)


def _reason(rawpy, e: Exception) -> str:
    if isinstance(e, rawpy.LibRawFileUnsupportedError):
        return "corrupt or unsupported RAW file"
    if isinstance(e, rawpy.LibRawIOError):
        return "truncated"
    text = str(e).strip("b'\"") or type(e).__name__
    return " ".join(f"corrupt RAW: {text}".split())[:120]
