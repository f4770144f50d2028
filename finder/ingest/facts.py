"""What a photo says about itself: date taken, camera, lens, GPS position, size.

``photo_facts(im, orientation, mtime_ns)`` reads them from an image Pillow has opened (its header
and EXIF only, no pixels), so the decoder that opens each file once gets them for free
(``finder.ingest.decode``). Nothing here raises: a missing or corrupt field is simply absent.

- **Date taken**: EXIF ``DateTimeOriginal`` with ``OffsetTimeOriginal`` when present, else
  ``DateTimeDigitized`` with ``OffsetTimeDigitized``. Kept as the local wall-clock time the
  camera wrote (``taken``, "YYYY-MM-DDTHH:MM:SS") plus its UTC offset in minutes when known
  (``offset_minutes``); ``date_source`` is ``"exif"``. A photo without such a date gets the
  file's modification time, in this machine's time zone with its offset, and ``date_source``
  ``"file"``.
- **Camera**: EXIF ``Make`` and ``Model``; **lens**: ``LensModel`` (``LensMake`` before it when
  the model does not already start with it).
- **Position**: GPS latitude and longitude in signed decimal degrees (south and west negative),
  dropped when out of range or when the receiver marked the fix void (``GPSStatus`` V).
- **Size**: width and height as the photo is shown, i.e. after its EXIF orientation.
- **Keywords** embedded in the photo (its XMP packet and IPTC record, as Pillow read them with
  the header; ``finder.ingest.keywords``): hierarchy paths like ``Animals|Pets|Rex``. The
  keywords of a sidecar beside the photo are read by the index run, not here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from finder.ingest.keywords import embedded_keywords

EXIF_IFD = 0x8769
GPS_IFD = 0x8825
_MAKE, _MODEL = 0x010F, 0x0110
_DATE_ORIGINAL, _OFFSET_ORIGINAL = 0x9003, 0x9011
_DATE_DIGITIZED, _OFFSET_DIGITIZED = 0x9004, 0x9012
_LENS_MAKE, _LENS_MODEL = 0xA433, 0xA434
_DATE_TAGS = ((_DATE_ORIGINAL, _OFFSET_ORIGINAL), (_DATE_DIGITIZED, _OFFSET_DIGITIZED))
_GPS_STATUS, _LAT_REF, _LAT, _LON_REF, _LON = 0x09, 0x01, 0x02, 0x03, 0x04
_SWAPS_AXES = frozenset({5, 6, 7, 8})

DATE_EXIF, DATE_FILE = "exif", "file"

_DATE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


@dataclass(frozen=True)
class PhotoFacts:
    """What one photo says about itself (see the module docstring)."""

    width: int
    height: int
    taken: str | None = None  # local wall-clock time, "YYYY-MM-DDTHH:MM:SS"
    offset_minutes: int | None = None  # UTC offset of ``taken``, when known
    date_source: str | None = None  # "exif" or "file" (the file's modification time)
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    lat: float | None = None
    lon: float | None = None
    keywords: tuple[str, ...] = ()  # embedded in the photo (XMP, IPTC): "Animals|Pets|Rex"

    def __post_init__(self) -> None:
        if not isinstance(self.keywords, tuple):  # a list, from JSON (finder.embed.cluster)
            object.__setattr__(self, "keywords", tuple(self.keywords))

    @property
    def taken_iso(self) -> str | None:
        """``taken`` with its offset when known, e.g. "2019-06-01T12:30:05+02:00"."""
        return format_taken(self.taken, self.offset_minutes)


def format_taken(taken: str | None, offset_minutes: int | None) -> str | None:
    if taken is None or offset_minutes is None:
        return taken
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{taken}{sign}{hours:02d}:{minutes:02d}"


def photo_facts(im: Image.Image, orientation: int, mtime_ns: int | None) -> PhotoFacts:
    """The facts of an opened image (header and EXIF only); ``mtime_ns`` is the file's
    modification time, the date of a photo whose EXIF has none."""
    w, h = im.size
    if orientation in _SWAPS_AXES:
        w, h = h, w
    try:
        exif = im.getexif()
    except Exception:  # a corrupt EXIF block: the photo still has a size and a file date
        exif = Image.Exif()
    sub = _ifd(exif, EXIF_IFD)
    gps = _ifd(exif, GPS_IFD)
    taken, offset = None, None
    for date_tag, offset_tag in _DATE_TAGS:
        taken = _date(sub.get(date_tag))
        if taken is not None:
            offset = _offset(sub.get(offset_tag))
            break
    source = DATE_EXIF if taken is not None else None
    if taken is None and mtime_ns is not None:
        taken, offset = file_date(mtime_ns)
        source = DATE_FILE
    lat, lon = _position(gps)
    lens_make, lens = _text(sub.get(_LENS_MAKE)), _text(sub.get(_LENS_MODEL))
    if lens and lens_make and not lens.lower().startswith(lens_make.lower()):
        lens = f"{lens_make} {lens}"
    return PhotoFacts(
        width=int(w),
        height=int(h),
        taken=taken,
        offset_minutes=offset,
        date_source=source,
        make=_text(exif.get(_MAKE)),
        model=_text(exif.get(_MODEL)),
        lens=lens or lens_make,
        lat=lat,
        lon=lon,
        keywords=embedded_keywords(im),
    )


def file_date(mtime_ns: int) -> tuple[str | None, int | None]:
    """A modification time as local wall-clock text and this machine's UTC offset then."""
    try:
        local = datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
    except (OverflowError, OSError, ValueError):
        return None, None
    delta = local.utcoffset()
    offset = None if delta is None else int(delta.total_seconds() // 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S"), offset


def _ifd(exif: Image.Exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = " ".join(value.replace("\x00", " ").split())
    return value or None


def _date(value: object) -> str | None:
    text = _text(value)
    m = _DATE.match(text) if text else None
    if m is None:
        return None
    try:
        return datetime(*(int(g) for g in m.groups())).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00" and other impossible dates
        return None


def _offset(value: object) -> int | None:
    text = _text(value)
    m = _OFFSET.match(text) if text else None
    if m is None:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60 or int(m.group(3)) >= 60:
        return None
    return -minutes if m.group(1) == "-" else minutes


def _degrees(value: object) -> float | None:
    """Degrees, minutes, seconds (rationals; fewer parts allowed) as decimal degrees."""
    try:
        parts = [float(v) for v in (value if isinstance(value, tuple | list) else (value,))]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not parts or len(parts) > 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        return None
    return sum(p / 60**k for k, p in enumerate(parts))


def _position(gps: dict) -> tuple[float | None, float | None]:
    if (_text(gps.get(_GPS_STATUS)) or "").upper() == "V":  # the receiver had no fix
        return None, None
    lat, lon = _degrees(gps.get(_LAT)), _degrees(gps.get(_LON))
    lat_ref = (_text(gps.get(_LAT_REF)) or "N").upper()[:1]
    lon_ref = (_text(gps.get(_LON_REF)) or "E").upper()[:1]
    if lat is None or lon is None or lat_ref not in "NS" or lon_ref not in "EW":
        return None, None
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None, None
    return round(lat, 7), round(lon, 7)
