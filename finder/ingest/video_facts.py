"""What a video says about itself, from its container: date taken with its zone, GPS position,
camera make and model, duration, size as shown.

``video_facts(metadata, ...)`` reads them from the container's tags as FFmpeg gives them
(``av.container.InputContainer.metadata``, keys compared in lowercase, since Matroska writes
them in uppercase). The result is a :class:`VideoFacts`, a :class:`~finder.ingest.facts.PhotoFacts`
with a ``duration``, so that the catalog stores both alike. Nothing here raises: a missing or
corrupt tag is simply absent.

- **Date taken**: Apple's ``com.apple.quicktime.creationdate`` (local time with its UTC offset,
  as the phone wrote it), else the container's ``creation_time`` (QuickTime ``mvhd``, Matroska
  ``DateUTC``: an instant in UTC), shown in this machine's time zone with its offset;
  ``date_source`` is ``"container"``. Dates before 1980 are the zero of some epoch (QuickTime
  counts from 1904), not a date: a video without a date gets the file's modification time,
  ``date_source`` ``"file"``, as a photo does.
- **Position**: QuickTime ``©xyz`` (FFmpeg's ``location``) or Apple's
  ``com.apple.quicktime.location.ISO6709``, an ISO 6709 string (``+48.8584+002.2945+035.000/``;
  degrees, or degrees and minutes, or degrees, minutes and seconds).
- **Camera**: Apple's ``com.apple.quicktime.make`` / ``model``, QuickTime ``©mak`` / ``©mod``
  (FFmpeg's ``make`` / ``model``), Android's ``com.android.manufacturer`` / ``model``.
- **Size**: the frames' width and height as shown: the sample aspect ratio applied, and
  swapped by a rotation of 90° or 270° (a phone's portrait video).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from finder.ingest.facts import DATE_FILE, PhotoFacts, file_date

DATE_CONTAINER = "container"

_LOCAL_DATE_KEYS = ("com.apple.quicktime.creationdate",)
_UTC_DATE_KEYS = ("creation_time", "date_utc")
_LOCATION_KEYS = ("location", "com.apple.quicktime.location.iso6709", "location-eng")
_MAKE_KEYS = ("com.apple.quicktime.make", "make", "com.android.manufacturer")
_MODEL_KEYS = ("com.apple.quicktime.model", "model", "com.android.model")
_FIRST_YEAR = 1980

_ISO_DATE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?\s*"
    r"(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)?(?:CRS.*)?/?")


@dataclass(frozen=True)
class VideoFacts(PhotoFacts):
    """What one video says about itself: the facts of a photo, and its length in seconds."""

    duration: float | None = None


def video_facts(
    metadata: Mapping[str, str],
    *,
    width: int,
    height: int,
    duration: float | None,
    mtime_ns: int | None,
) -> VideoFacts:
    """The facts of a video from its container's tags; ``width`` and ``height`` as shown,
    ``duration`` in seconds, ``mtime_ns`` the file's modification time (the date of a video
    whose container has none)."""
    tags = {str(k).lower(): str(v) for k, v in metadata.items()}
    taken, offset, source = None, None, None
    for key in _LOCAL_DATE_KEYS:
        taken, offset = _date(tags.get(key), local=True)
        if taken is not None:
            break
    if taken is None:
        for key in _UTC_DATE_KEYS:
            taken, offset = _date(tags.get(key), local=False)
            if taken is not None:
                break
    if taken is not None:
        source = DATE_CONTAINER
    elif mtime_ns is not None:
        taken, offset = file_date(mtime_ns)
        source = DATE_FILE if taken is not None else None
    lat, lon = None, None
    for key in _LOCATION_KEYS:
        lat, lon = parse_iso6709(tags.get(key))
        if lat is not None:
            break
    return VideoFacts(
        width=int(width),
        height=int(height),
        taken=taken,
        offset_minutes=offset,
        date_source=source,
        make=_first(tags, _MAKE_KEYS),
        model=_first(tags, _MODEL_KEYS),
        lat=lat,
        lon=lon,
        duration=duration if duration is not None and math.isfinite(duration) else None,
    )


def _first(tags: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = " ".join(tags.get(key, "").replace("\x00", " ").split())
        if value:
            return value
    return None


def _date(text: str | None, *, local: bool) -> tuple[str | None, int | None]:
    """(local wall-clock "YYYY-MM-DDTHH:MM:SS", UTC offset in minutes) of a tag's date.
    ``local``: the text is the local time with its offset (Apple's); otherwise it is an
    instant in UTC, shown in this machine's zone."""
    m = _ISO_DATE.match(text or "")
    if m is None:
        return None, None
    try:
        when = datetime(*(int(g) for g in m.groups()[:6]))
    except ValueError:
        return None, None
    if when.year < _FIRST_YEAR:
        return None, None
    zone = m.group(7)
    offset = None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if minutes >= 60 or hours > 14:
            return None, None
        offset = sign * (hours * 60 + minutes)
    if local:
        return when.strftime("%Y-%m-%dT%H:%M:%S"), offset
    if offset is not None:  # an instant given with its own offset: keep it as it is
        return when.strftime("%Y-%m-%dT%H:%M:%S"), offset
    try:
        shown = when.replace(tzinfo=timezone.utc).astimezone()
    except (OverflowError, OSError, ValueError):
        return None, None
    delta = shown.utcoffset()
    return (
        shown.strftime("%Y-%m-%dT%H:%M:%S"),
        None if delta is None else int(delta.total_seconds() // 60),
    )


def parse_iso6709(text: str | None) -> tuple[float | None, float | None]:
    """Latitude and longitude in signed decimal degrees from an ISO 6709 point
    (``+DD.DD+DDD.DD``, ``+DDMM.MM+DDDMM.MM`` or ``+DDMMSS.S+DDDMMSS.S``, an altitude and a
    ``/`` may follow); (None, None) when it is not one or is off the globe."""
    m = _ISO6709.match(text or "")
    if m is None:
        return None, None
    lat = _sexagesimal(m.group(1), 2)
    lon = _sexagesimal(m.group(2), 3)
    if lat is None or lon is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None, None
    if lat == 0.0 and lon == 0.0:  # "+00.0000+000.0000/": a receiver without a fix
        return None, None
    return round(lat, 7), round(lon, 7)


def _sexagesimal(text: str, degree_digits: int) -> float | None:
    """A signed ISO 6709 coordinate whose integer part has ``degree_digits`` digits of
    degrees, then maybe two of minutes and two of seconds."""
    sign = -1.0 if text[0] == "-" else 1.0
    body = text[1:]
    whole, _, fraction = body.partition(".")
    extra = max(0, len(whole) - degree_digits)  # fewer digits than the standard's: degrees
    if extra not in (0, 2, 4):
        return None
    try:
        value = float(body)
    except ValueError:
        return None
    if extra == 0:
        degrees = value
    elif extra == 2:
        degrees = int(whole[:degree_digits]) + float(whole[degree_digits:] + "." + fraction) / 60
        if int(whole[degree_digits:]) >= 60:
            return None
    else:
        minutes, seconds = int(whole[degree_digits:-2]), float(whole[-2:] + "." + fraction)
        if minutes >= 60 or seconds >= 60:
            return None
        degrees = int(whole[:degree_digits]) + minutes / 60 + seconds / 3600
    return sign * degrees if math.isfinite(degrees) else None
