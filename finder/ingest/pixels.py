"""A Pillow image, once opened and checked (``finder.ingest.decode``), to RGB uint8 pixels:
decoded at reduced scale where the format allows (``draft``), a cut-short baseline JPEG
refused, converted to RGB (deep and float images scaled, never clipped), resized to the size
asked, turned by its EXIF orientation, transparency composited on white."""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np
from PIL import Image

from finder.errors import DecodeError
from finder.ingest import truncation
from finder.ingest.reduced import REDUCING_GAP

#: Colour used under transparent pixels.
BACKGROUND = (255, 255, 255)

RESAMPLE = Image.Resampling.BILINEAR
#: Formats whose loader can skip work for a smaller size: JPEG/MPO by DCT scaling; HEIF (pillow-heif
#: >= 1.2) by decoding an embedded thumbnail that is a scaled copy no smaller than asked.
_DRAFT_FORMATS = frozenset({"JPEG", "MPO", "HEIF"})
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) from the header, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a corrupt EXIF block must not make a good image fail
        return 1


def target(
    im: Image.Image, orientation: int, width: int, height: int, cover: float | None
) -> tuple[int, int]:
    """The size asked of the decoder and the resizer: before rotation, so swapped for 90° turns.
    With ``cover``, the aspect ratio is kept: the smallest that covers (width, height) * cover."""
    w, h = im.size
    if cover is not None:
        ow, oh = (h, w) if orientation in _SWAPS_AXES else (w, h)
        scale = max(width * max(cover, 1.0) / ow, height * max(cover, 1.0) / oh)
        width, height = max(width, round(ow * scale)), max(height, round(oh * scale))
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def _load_pixels(im: Image.Image, pre: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Decode the pixels (at reduced scale where the format allows); the box of the result
    that ``pre`` covers, when drafted."""
    box = None
    if im.format in _DRAFT_FORMATS:
        drafted = im.draft("RGB", pre)
        if drafted is not None:
            box = drafted[1]
    im.load()
    return box


def _cut_short(im: Image.Image, pre: tuple[int, int], f: BinaryIO) -> bool:
    """A baseline JPEG whose scan ended early: libjpeg leaves the blocks it never reached
    mid-grey; decoded again with filler bytes before its end marker, it changes."""
    if im.format not in ("JPEG", "MPO") or not truncation.jpeg_grey_tail(im):
        return False
    f.seek(0)
    padded = truncation.jpeg_padded(f.read())
    if padded is None:
        return False
    again = Image.open(io.BytesIO(padded), formats=("JPEG",))
    try:
        _load_pixels(again, pre)
    except Exception:  # the filler broke the stream: no verdict
        return False
    return again.size != im.size or not np.array_equal(np.asarray(again), np.asarray(im))


def render(
    im: Image.Image, pre: tuple[int, int], orientation: int, f: BinaryIO | None = None
) -> np.ndarray:
    """Decode (at reduced scale for JPEG), convert, resize to ``pre``, then orient."""
    box = _load_pixels(im, pre)
    if f is not None and _cut_short(im, pre, f):
        raise DecodeError("truncated")
    im, has_alpha = _normalise_mode(im)
    if im.size != pre or box is not None:
        im = im.resize(pre, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    if orientation in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[orientation])
    if has_alpha:
        background = Image.new("RGBA", im.size, (*BACKGROUND, 255))
        im = Image.alpha_composite(background, im).convert("RGB")
    out = np.asarray(im, dtype=np.uint8)
    width, height = (pre[1], pre[0]) if orientation in _SWAPS_AXES else pre
    if out.shape != (height, width, 3):  # a plugin returned something unexpected
        raise DecodeError(f"unsupported image layout {im.mode} {out.shape}")
    return out


def _normalise_mode(im: Image.Image) -> tuple[Image.Image, bool]:
    """The image as mode RGB, or RGBA when it has transparency; second item: has alpha."""
    mode = im.mode
    if mode == "RGB":
        return im, False
    if mode in _ALPHA_MODES or (
        mode == "P"
        and ("transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA"))
    ):
        rgba = im if mode == "RGBA" else im.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] == 255:  # fully opaque: skip the compositing
            return rgba.convert("RGB"), False
        return rgba, True
    if mode == "P":
        return im.convert("RGB"), False
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _deep_to_rgb(im), False
    if mode in ("L", "1", "CMYK", "YCbCr", "RGBX", "HSV"):
        return im.convert("RGB"), False
    try:
        return im.convert("RGB"), False
    except ValueError:
        raise DecodeError(f"unsupported colour mode {mode}") from None


def _deep_to_rgb(im: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float grayscale image scaled (not clipped) to 8-bit RGB.

    16-bit modes map 0-65535 to 0-255. Integer mode ``I`` holding values within 0-65535 is
    treated as 16-bit (that is how Pillow long loaded 16-bit PNG); float ``F`` within 0-1 is
    scaled by 255. Anything else is stretched from its minimum to its maximum.
    """
    a = np.asarray(im)
    if im.mode in _SIXTEEN_BIT_MODES:
        a = a.astype(np.float32) * (255.0 / 65535.0)
    else:
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            a = a * (255.0 / 65535.0)
        elif im.mode == "F" and lo >= 0 and hi <= 1:
            a = a * 255.0
        else:
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    gray = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")
