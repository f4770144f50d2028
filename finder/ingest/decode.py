"""Any photo file → RGB uint8 pixels at a requested size.

``load_rgb(path, size)`` is the entry point (``load_views`` builds on it; ``read_facts`` reads
only a header). What it does, in order:

1. Opens the file itself (``files.open_regular``: non-blocking, regular files only), so that
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
   reduced by 8 is decoded from its DC scans only (see ``reduced.dc_scans_only``): DCT scaling
   cannot skip the entropy decoding of the AC scans, which the 1/8-scale IDCT does not need.
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

This module does steps 1 to 3 and the views; ``pixels.py`` steps 4 to 6 on the opened image,
with ``reduced.py`` for the reduced decoding of progressive JPEG and JPEG 2000.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Callable
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from finder.errors import Arg, DecodeError, UsageError
from finder.ingest import pixels, reduced, truncation
from finder.ingest.facts import PhotoFacts, photo_facts
from finder.ingest.files import open_regular, os_error_reason
from finder.ingest.raw import is_raw_name

#: Largest image accepted, in pixels (width × height from the header). 250 MP: a 100+ MP
#: panorama decodes, and a non-JPEG image this large still takes at most 1 GB as RGBA.
MAX_PIXELS = 250_000_000

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# Pillow warns about things like "Corrupt EXIF data" on many real photos that decode fine;
# indexing a library must not print them.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

#: Pillow plugins allowed to open a file: the photo formats of crawl.IMAGE_EXTENSIONS (MPO is
#: opened by the JPEG plugin). Anything else (PDF, EPS, which would run Ghostscript, PSD, ...)
#: is "not an image", whatever its name.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF", "JPEG2000", "PPM")
#: ``ftyp`` brands of AVIF files (still pictures and sequences).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

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


def check_views(views: int, field: str = "views") -> int:
    """``views`` if it is a view count ``load_views`` knows, else a one-line ``UsageError``
    about the argument ``field``."""
    if views not in VIEWS:
        raise UsageError(Arg(field), f" must be one of {', '.join(map(str, VIEWS))}, not {views}")
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
    decoded, facts = _load(path, size, view_cover(views))
    return make_views(decoded, size, views), facts


def view_cover(views: int) -> float | None:
    """How ``make_views`` wants its image decoded: squashed to the size (None), or, for 4
    views, aspect kept and covering the size scaled by ``CROP_COVER``."""
    return CROP_COVER if views == 4 else None


def make_views(decoded: np.ndarray, size: tuple[int, int], views: int) -> np.ndarray:
    """The ``views`` views (uint8 ``(views, height, width, 3)``) of one decoded image, as
    ``load_views`` describes them; ``decoded`` is the image decoded as ``view_cover(views)``
    says (for videos too: ``finder.ingest.video``)."""
    width, height = _check_size(size)
    if views < 4:
        return np.stack([decoded, decoded[:, ::-1]]) if views == 2 else decoded[None]
    bh, bw = decoded.shape[:2]
    whole = np.asarray(
        Image.fromarray(decoded).resize((width, height), pixels.RESAMPLE, reducing_gap=None)
    )
    top, left = (bh - height) // 2, (bw - width) // 2
    crop = decoded[top : top + height, left : left + width]
    return np.stack([whole, whole[:, ::-1], crop, crop[:, ::-1]])


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
    return photo_facts(im, pixels.orientation(im), _mtime_ns(f))


def _decode_raw(
    f: BinaryIO, path: str | os.PathLike[str], width: int, height: int, cover: float | None
) -> tuple[np.ndarray, PhotoFacts]:
    """A camera RAW file: its embedded preview when large enough, else a half-size demosaic."""
    from finder.ingest.raw import open_raw, raw_facts

    scale = max(cover or 1.0, 1.0)
    pic = open_raw(path, (round(width * scale), round(height * scale)), MAX_PIXELS)
    pre = pixels.target(pic.image, pic.orientation, width, height, cover)
    facts = raw_facts(f, pic.size, pic.preview, _mtime_ns(f))
    return pixels.render(pic.image, pre, pic.orientation), facts


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
    orientation = pixels.orientation(im)
    facts = photo_facts(im, orientation, _mtime_ns(f))
    pre = pixels.target(im, orientation, width, height, cover)
    if im.format == "JPEG" and im.info.get("progressive") and min(w // pre[0], h // pre[1]) >= 8:
        f.seek(0)
        dc = reduced.dc_scans_only(f.read())
        if dc is not None:
            try:
                dc_im = Image.open(io.BytesIO(dc), formats=("JPEG",))
                return pixels.render(dc_im, pre, orientation), facts
            except Exception:  # whatever went wrong, the whole stream decides
                pass
        f.seek(0)
        im = Image.open(f, formats=_formats())
    if im.format == "JPEG2000" and reduced.reduce_jpeg2000(im, pre):
        try:
            return pixels.render(im, pre, orientation, f), facts
        except Exception:  # fewer wavelet levels than the reduction: decode in full
            f.seek(0)
            im = Image.open(f, formats=("JPEG2000",))
    return pixels.render(im, pre, orientation, f), facts


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
