"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...) through ``rawpy`` (LibRaw).

``open_raw(path, want)`` gives a Pillow image and the EXIF orientation (1-8) to apply to it:

- the camera's embedded preview when it is at least ``want`` (width, height) once oriented:
  most cameras store a full-size or a ~1-2 MP JPEG, which decodes in milliseconds (and by DCT
  scaling, since ``decode`` then treats it as any JPEG); a bitmap preview is used the same way;
- else a half-size demosaic (LibRaw's ``half_size``: each 2x2 Bayer block becomes one pixel,
  no interpolation), with the camera's white balance, already oriented by LibRaw.

The preview is stored unrotated; the orientation comes from the RAW file (LibRaw's ``flip``),
never from the preview's own EXIF. ``rawpy`` is imported on the first RAW file. Every failure is
a ``DecodeError`` with a short reason.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from finder.errors import DecodeError
from finder.ingest.crawl import RAW_EXTENSIONS

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


def open_raw(
    path: str | os.PathLike[str], want: tuple[int, int], max_pixels: int
) -> tuple[Image.Image, int]:
    """A Pillow image of the RAW file at ``path`` and the orientation still to apply to it.

    ``want`` is the (width, height) the caller needs after orientation. Raises ``DecodeError``
    ("decompression bomb" above ``max_pixels`` sensor pixels)."""
    rawpy = _rawpy()
    try:
        raw = rawpy.imread(os.fsdecode(path))
    except rawpy.LibRawFileUnsupportedError:
        raise DecodeError("corrupt or unsupported RAW file") from None
    except rawpy.LibRawIOError:
        raise DecodeError("truncated") from None
    except (rawpy.LibRawError, rawpy.NotSupportedError) as e:
        raise DecodeError(_reason(e)) from None
    except UnicodeError:  # a name that is not valid UTF-8: LibRaw cannot be given it
        with open(path, "rb") as f:
            try:
                raw = rawpy.imread(f)
            except (rawpy.LibRawError, rawpy.NotSupportedError) as e:
                raise DecodeError(_reason(e)) from None
    with raw:
        sizes = raw.sizes
        if sizes.raw_width * sizes.raw_height > max_pixels:
            raise DecodeError("decompression bomb")
        orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
        preview = _preview(raw, rawpy, want, orientation)
        if preview is not None:
            return preview, orientation
        try:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except (rawpy.LibRawError, rawpy.NotSupportedError) as e:
            raise DecodeError(_reason(e)) from None
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB"), 1  # LibRaw has oriented it


def _preview(raw, rawpy, want: tuple[int, int], orientation: int) -> Image.Image | None:
    """The embedded preview when there is one at least ``want`` once oriented, else None."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, rawpy.NotSupportedError):
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data), formats=("JPEG",))
        elif thumb.format == rawpy.ThumbFormat.BITMAP:
            im = Image.fromarray(np.ascontiguousarray(thumb.data[..., :3]), "RGB")
        else:
            return None
    except Exception:  # a broken preview: demosaic instead
        return None
    w, h = im.size
    if orientation in _SWAPS_AXES:
        w, h = h, w
    return None if w < want[0] or h < want[1] else im


def raw_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The (width, height) of a RAW file's developed image, oriented; from its header."""
    rawpy = _rawpy()
    try:
        with rawpy.imread(os.fsdecode(path)) as raw:
            sizes = raw.sizes
            w, h = int(sizes.width), int(sizes.height)
            swap = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1) in _SWAPS_AXES
    except (rawpy.LibRawError, rawpy.NotSupportedError, UnicodeError) as e:
        raise DecodeError(_reason(e)) from None
    return (h, w) if swap else (w, h)


def _reason(e: Exception) -> str:
    text = str(e).strip("b'\"") or type(e).__name__
    return " ".join(f"corrupt RAW: {text}".split())[:120]
