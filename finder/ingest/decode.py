"""Any photo file → RGB uint8 pixels at a requested size.

``load_rgb(path, size)`` is the entry point (``load_views`` builds on it; ``read_facts`` reads
only a header). What it does, in order:

1. Opens the file itself (``crawl.open_regular``: non-blocking, regular files only), so that
   operating-system failures get their own reasons ("empty file", "file vanished",
   "permission denied", "is a directory", "not a regular file").
2. Identifies the image from its content, not its name, among the photo formats only
   (``PHOTO_FORMATS``: JPEG, PNG, WebP, GIF, BMP, TIFF, HEIF, AVIF where Pillow has it,
   JPEG 2000, Netpbm; no PDF, EPS or PSD, whatever the file is called). HEIC/HEIF is
   recognised by its ``ftyp`` box; pillow-heif's opener is registered the first time one is
   seen (once per process). Camera RAW files are the exception, known by their name
   (``crawl.RAW_EXTENSIONS``: most are TIFF inside) and read through LibRaw (``finder.ingest.raw``:
   the embedded preview when large enough, else a half-size demosaic).
3. Refuses images over ``MAX_PIXELS`` (read from the header, before any pixel is decoded) as
   "decompression bomb". The limit is above Pillow's default (89 MP) because 100+ MP panoramas
   are real photos. Importing this module sets Pillow's own ``MAX_IMAGE_PIXELS`` to the same limit
   and turns ``DecompressionBombWarning`` into an error, so Pillow's check is a backstop that
   agrees with ours and never prints a warning. Pillow's other warnings (``UserWarning`` such
   as "Corrupt EXIF data") are silenced: the image still decodes, and indexing a library must
   not print them.
4. Reads the EXIF orientation from the header. A JPEG (or MPO) is then decoded at reduced scale
   through libjpeg's DCT scaling (``Image.draft``), never below the output size *after* rotation
   (a 90° orientation swaps the width and height asked of the decoder). A progressive JPEG
   reduced by 8 is decoded from its DC scans only (see ``_dc_scans_only``): DCT scaling cannot
   skip the entropy decoding of the AC scans, which the 1/8-scale IDCT does not need.
   A HEIC/HEIF file with an embedded thumbnail at least as large as the output (iPhones store
   one) is decoded from that thumbnail (pillow-heif's ``draft``): decoding a 12 MP HEIC takes
   about 2 s here, its thumbnail a few milliseconds. The thumbnail is the camera's own downscale,
   so fine detail may differ from a filtered downscale of the full image. A JPEG 2000 image is
   decoded at the smallest power-of-two reduction of its wavelet levels at least twice the
   output size.
5. Converts the first frame to RGB: palette, grayscale, bilevel and CMYK through Pillow; 16-bit
   and 32-bit integer (``I;16*``, ``I``) and float (``F``) images are scaled to 8 bits, never
   clipped. Transparent images are composited on white, after resizing (cheaper, and Pillow
   resizes RGBA with premultiplied alpha so no dark fringes appear); an alpha channel that is
   fully opaque is simply dropped.
6. Resizes to exactly ``size`` (width, height): the whole image is squashed, no crop, like
   ``keras.utils.load_img(target_size=...)``, with Pillow's antialiased BILINEAR filter and
   ``reducing_gap`` for speed. Then applies the orientation, on the small image.

Every failure is one ``DecodeError`` whose ``str`` is a short reason; no other exception leaves.
Truncated files are failures ("truncated"), never partially grey images.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from collections.abc import Callable
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from finder.errors import DecodeError, UsageError
from finder.ingest import truncation
from finder.ingest.crawl import open_regular, os_error_reason
from finder.ingest.facts import PhotoFacts, photo_facts
from finder.ingest.raw import is_raw_name

#: Largest image accepted, in pixels (width × height from the header). 250 MP: a 100+ MP
#: panorama decodes, and a non-JPEG image this large still takes at most 1 GB as RGBA.
MAX_PIXELS = 250_000_000

#: Colour used under transparent pixels.
BACKGROUND = (255, 255, 255)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# Pillow warns about things like "Corrupt EXIF data" on many real photos that decode fine;
# indexing a library must not print them.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

_RESAMPLE = Image.Resampling.BILINEAR
_REDUCING_GAP = 2.0
#: Formats whose loader can skip work for a smaller size: JPEG/MPO by DCT scaling; HEIF (pillow-heif
#: >= 1.2) by decoding an embedded thumbnail that is a scaled copy no smaller than asked.
_DRAFT_FORMATS = frozenset({"JPEG", "MPO", "HEIF"})
#: Pillow plugins allowed to open a file: the photo formats of crawl.IMAGE_EXTENSIONS (MPO is
#: opened by the JPEG plugin). Anything else (PDF, EPS, which would run Ghostscript, PSD, ...)
#: is "not an image", whatever its name.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF", "JPEG2000", "PPM")
#: ``ftyp`` brands of AVIF files (still pictures and sequences).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
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

T = TypeVar("T")

_heif_lock = threading.Lock()
_heif_registered = False


def _register_heif() -> None:
    """Register pillow-heif's opener with Pillow, once per process, on first need."""
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise UsageError(f"size must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise UsageError(f"size must be positive, got {size!r}")
    return width, height


def load_rgb(
    path: str | os.PathLike[str], size: tuple[int, int], *, cover: float | None = None
) -> np.ndarray:
    """Decode ``path`` to RGB uint8 of shape (height, width, 3); ``size`` is (width, height).
    With ``cover``, the aspect ratio is kept instead and the result is the smallest that covers
    ``size`` scaled by ``cover`` (at least 1).

    Raises ``DecodeError`` with a short reason for every way the file can be bad, and
    ``UsageError`` if ``size`` is not two positive integers.
    """
    return _load(path, size, cover)[0]


def read_facts(path: str | os.PathLike[str]) -> PhotoFacts:
    """The facts of ``path`` (``finder.ingest.facts``) from its header and EXIF alone, no pixels
    decoded: for photos indexed before finder kept them. Raises ``DecodeError`` like
    ``load_rgb``."""
    return _opened(path, _header_facts, lambda f: _raw_header_facts(f, path))


def _load(
    path: str | os.PathLike[str], size: tuple[int, int], cover: float | None
) -> tuple[np.ndarray, PhotoFacts]:
    width, height = _check_size(size)
    return _opened(
        path,
        lambda f: _decode(f, width, height, cover),
        lambda f: _decode_raw(f, path, width, height, cover),
    )


def _opened(
    path: str | os.PathLike[str],
    action: Callable[[BinaryIO], T],
    raw_action: Callable[[BinaryIO], T],
) -> T:
    """Open ``path`` once and run ``action`` on it (``raw_action`` for a camera RAW file); every
    failure becomes a ``DecodeError``."""
    f = open_regular(path)
    with f:
        heif_missing = False
        try:
            head = f.read(16)
            if not head:
                raise DecodeError("empty file")
            f.seek(0)
            if is_raw_name(path):
                return raw_action(f)
            if head[4:8] == b"ftyp":
                if head[8:12] in _AVIF_BRANDS and "AVIF" not in _formats():
                    raise DecodeError("AVIF support missing (needs Pillow >= 11.3 with AVIF)")
                try:
                    _register_heif()
                except ImportError:
                    heif_missing = True
            return action(f)
        except DecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DecodeError("decompression bomb") from None
        except UnidentifiedImageError:
            if heif_missing:
                raise DecodeError("HEIF support missing (pip install pillow-heif)") from None
            raise DecodeError("not an image") from None
        except MemoryError:
            raise DecodeError("out of memory") from None
        except OSError as e:
            raise DecodeError(_pillow_reason(e)) from None
        except Exception as e:  # Pillow plugins raise many types on corrupt data
            raise DecodeError(_short(f"corrupt image: {str(e) or type(e).__name__}")) from None


VIEWS = (1, 2, 4)
CROP_COVER = 256 / 224  # the centre crop of ImageNet evaluation: short side 256, crop 224


def check_views(views: int, what: str = "views") -> int:
    """``views`` if it is a view count ``load_views`` knows, else a one-line ``UsageError``."""
    if views not in VIEWS:
        raise UsageError(f"{what} must be one of {', '.join(map(str, VIEWS))}, not {views}")
    return views


def load_views(path: str | os.PathLike[str], size: tuple[int, int], views: int = 1) -> np.ndarray:
    """The ``views`` test-time views of ``path``, uint8 ``(views, height, width, 3)``: 1 = the
    whole image squashed to ``size`` (what ``load_rgb`` gives); 2 = that and its mirror; 4 = those
    and the centre crop of the image scaled, aspect kept, to cover ``size`` x 256/224, and its
    mirror. One decode serves every view."""
    return load_views_facts(path, size, views)[0]


def load_views_facts(
    path: str | os.PathLike[str], size: tuple[int, int], views: int = 1
) -> tuple[np.ndarray, PhotoFacts]:
    """``load_views`` and the photo's facts (date, camera, position, size), from one read."""
    check_views(views)
    width, height = _check_size(size)
    if views < 4:
        a, facts = _load(path, size, None)
        return (np.stack([a, a[:, ::-1]]) if views == 2 else a[None]), facts
    big, facts = _load(path, size, CROP_COVER)
    bh, bw = big.shape[:2]
    whole = np.asarray(Image.fromarray(big).resize((width, height), _RESAMPLE, reducing_gap=None))
    top, left = (bh - height) // 2, (bw - width) // 2
    crop = big[top : top + height, left : left + width]
    return np.stack([whole, whole[:, ::-1], crop, crop[:, ::-1]]), facts


def _formats() -> tuple[str, ...]:
    """The photo formats this Pillow can open now (HEIF only once pillow-heif is registered)."""
    Image.init()
    return tuple(name for name in PHOTO_FORMATS if name in Image.OPEN)


def _mtime_ns(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_mtime_ns
    except (OSError, AttributeError, ValueError):
        return None


def _header_facts(f: BinaryIO) -> PhotoFacts:
    im = Image.open(f, formats=_formats())
    return photo_facts(im, _orientation(im), _mtime_ns(f))


def _target(
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


def _decode_raw(
    f: BinaryIO, path: str | os.PathLike[str], width: int, height: int, cover: float | None
) -> tuple[np.ndarray, PhotoFacts]:
    """A camera RAW file: its embedded preview when large enough, else a half-size demosaic."""
    from finder.ingest.raw import open_raw, raw_facts

    scale = max(cover or 1.0, 1.0)
    pic = open_raw(path, (round(width * scale), round(height * scale)), MAX_PIXELS)
    pre = _target(pic.image, pic.orientation, width, height, cover)
    facts = raw_facts(f, pic.size, pic.preview, _mtime_ns(f))
    return _render(pic.image, pre, pic.orientation), facts


def _raw_header_facts(f: BinaryIO, path: str | os.PathLike[str]) -> PhotoFacts:
    from finder.ingest.raw import raw_facts, raw_size

    return raw_facts(f, raw_size(path), None, _mtime_ns(f))


def _decode(
    f: BinaryIO, width: int, height: int, cover: float | None = None
) -> tuple[np.ndarray, PhotoFacts]:
    im = Image.open(f, formats=_formats())
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise DecodeError("decompression bomb")
    truncation.check_declared(im, os.fstat(f.fileno()).st_size)
    if im.format == "PNG":
        truncation.check_png(f)
    elif im.format in ("JPEG", "MPO") and im.info.get("progressive"):
        f.seek(0)
        if truncation.progressive_incomplete(f.read()):
            raise DecodeError("truncated")
    orientation = _orientation(im)
    facts = photo_facts(im, orientation, _mtime_ns(f))
    pre = _target(im, orientation, width, height, cover)
    if im.format == "JPEG" and im.info.get("progressive") and min(w // pre[0], h // pre[1]) >= 8:
        f.seek(0)
        dc = _dc_scans_only(f.read())
        if dc is not None:
            try:
                dc_im = Image.open(io.BytesIO(dc), formats=("JPEG",))
                return _render(dc_im, pre, orientation), facts
            except Exception:  # whatever went wrong, the whole stream decides
                pass
        f.seek(0)
        im = Image.open(f, formats=_formats())
    if im.format == "JPEG2000" and _reduce_jpeg2000(im, pre):
        try:
            return _render(im, pre, orientation, f), facts
        except Exception:  # fewer wavelet levels than the reduction: decode in full
            f.seek(0)
            im = Image.open(f, formats=("JPEG2000",))
    return _render(im, pre, orientation, f), facts


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


def _render(
    im: Image.Image, pre: tuple[int, int], orientation: int, f: BinaryIO | None = None
) -> np.ndarray:
    """Decode (at reduced scale for JPEG), convert, resize to ``pre``, then orient."""
    box = _load_pixels(im, pre)
    if f is not None and _cut_short(im, pre, f):
        raise DecodeError("truncated")
    im, has_alpha = _normalise_mode(im)
    if im.size != pre or box is not None:
        im = im.resize(pre, _RESAMPLE, box=box, reducing_gap=_REDUCING_GAP)
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


# A marker ending entropy-coded data: 0xFF then neither a stuffed 0x00, a restart marker nor fill.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _dc_scans_only(data: bytes) -> bytes | None:
    """A progressive JPEG stream with its AC scans left out, or None when that does not apply.

    At 1/8 scale libjpeg's IDCT of a block is its DC coefficient alone, so the AC scans, most of
    a progressive file, only cost entropy decoding that DCT scaling cannot skip (a full 1/8-scale
    decode of an 18 MP progressive JPEG spends most of its time there). The result is not
    bit-identical to decoding every scan (chroma upsampling and libjpeg's block smoothing look
    at the missing coefficients) but stays within about one grey level on average.

    Returns None (decode the whole stream) unless the stream is a well-formed progressive
    Huffman JPEG (SOF2) that ends with EOI and has AC scans to leave out; so a truncated file
    is still reported as truncated by the full decode.
    """
    if data[:2] != b"\xff\xd8":
        return None
    out = [data[:2]]
    i, n = 2, len(data)
    progressive = dropped = False
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # EOI
            if not (progressive and dropped):
                return None
            out.append(data[i : i + 2])
            return b"".join(out)
        if i + 4 > n:
            return None
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            if marker != 0xC2:
                return None
            progressive = True
        if marker == 0xDA:  # SOS: header, then entropy-coded data up to the next marker
            if end > n:
                return None
            spectral_start = data[i + 5 + 2 * data[i + 4]]
            found = _MARKER_AFTER_SCAN.search(data, end)
            if found is None:
                return None
            end = found.start()
            if spectral_start == 0:
                out.append(data[i:end])
            else:
                dropped = True
        else:
            out.append(data[i:end])
        i = end
    return None


_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def _reduce_jpeg2000(im: Image.Image, pre: tuple[int, int]) -> int:
    """Have a JPEG 2000 image decode at the smallest power-of-two reduction still at least
    ``_REDUCING_GAP`` times ``pre`` (its wavelet levels make that a fraction of a full decode);
    returns the level. Capped at 5, OpenJPEG's default number of levels (a file with fewer fails,
    and is then decoded in full)."""
    w, h = im.size
    gw, gh = pre[0] * _REDUCING_GAP, pre[1] * _REDUCING_GAP
    level = 0
    while level < 5 and (w >> (level + 1)) >= gw and (h >> (level + 1)) >= gh:
        level += 1
    if level:
        im.reduce = level  # type: ignore[method-assign, assignment]
    return level


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) from the header, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a corrupt EXIF block must not make a good image fail
        return 1


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


def _pillow_reason(e: OSError) -> str:
    """A short reason for an ``OSError`` raised while Pillow read the file."""
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return os_error_reason(e)
    text = str(e)
    low = text.lower()
    if "truncated" in low or "premature end" in low or "broken data stream" in low:
        return "truncated"
    if e.errno is not None:
        return os_error_reason(e)
    return _short(f"corrupt image: {text or type(e).__name__}")


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
