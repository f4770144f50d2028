"""Photo facts read by the decoder from EXIF the tests write themselves (Pillow's Image.Exif)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from finder.ingest import decode
from finder.ingest.facts import DATE_EXIF, DATE_FILE, format_taken


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = (value - d - m / 60) * 3600
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 10000), 10000)


def make_exif(
    *,
    taken: str | None = None,
    offset: str | None = None,
    digitized: str | None = None,
    gps: tuple[float, float] | None = None,
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    """EXIF with the given fields: ``taken`` as "YYYY:MM:DD HH:MM:SS", ``gps`` as signed
    decimal degrees (written as DMS with N/S and E/W references)."""
    exif = Image.Exif()
    if make:
        exif[ExifTags.Base.Make] = make
    if model:
        exif[ExifTags.Base.Model] = model
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken:
        sub[ExifTags.Base.DateTimeOriginal] = taken
    if offset:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if digitized:
        sub[ExifTags.Base.DateTimeDigitized] = digitized
    if lens:
        sub[ExifTags.Base.LensModel] = lens
    if gps:
        g = exif.get_ifd(ExifTags.IFD.GPSInfo)
        g[ExifTags.GPS.GPSLatitudeRef] = "N" if gps[0] >= 0 else "S"
        g[ExifTags.GPS.GPSLatitude] = _dms(gps[0])
        g[ExifTags.GPS.GPSLongitudeRef] = "E" if gps[1] >= 0 else "W"
        g[ExifTags.GPS.GPSLongitude] = _dms(gps[1])
    return exif


def exif_photo(
    path: Path,
    *,
    size: tuple[int, int] = (96, 64),
    seed: int = 0,
    fmt: str | None = None,
    **fields: object,
) -> Path:
    """A small noise photo with the EXIF ``make_exif(**fields)`` gives."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, exif=make_exif(**fields))  # type: ignore[arg-type]
    return path


def test_date_with_offset_camera_lens_and_size(tmp_path: Path) -> None:
    path = exif_photo(
        tmp_path / "a.jpg",
        taken="2019:06:01 12:30:05",
        offset="+02:00",
        make="Canon",
        model="Canon EOS 5D Mark IV",
        lens="EF24-105mm f/4L IS USM",
        size=(120, 80),
    )
    pixels, facts = decode.load_views_facts(path, (32, 32), 1)
    assert pixels.shape == (1, 32, 32, 3)
    assert facts.taken == "2019-06-01T12:30:05"
    assert facts.offset_minutes == 120
    assert facts.taken_iso == "2019-06-01T12:30:05+02:00"
    assert facts.date_source == DATE_EXIF
    assert (facts.make, facts.model, facts.lens) == (
        "Canon",
        "Canon EOS 5D Mark IV",
        "EF24-105mm f/4L IS USM",
    )
    assert (facts.width, facts.height) == (120, 80)
    assert decode.read_facts(path) == facts  # the header-only read agrees with the decode


def test_date_without_offset_and_negative_offsets(tmp_path: Path) -> None:
    plain = decode.read_facts(exif_photo(tmp_path / "a.jpg", taken="2021:12:31 23:59:59"))
    assert plain.taken == "2021-12-31T23:59:59" and plain.offset_minutes is None
    assert plain.taken_iso == "2021-12-31T23:59:59" and plain.date_source == DATE_EXIF
    west = decode.read_facts(
        exif_photo(tmp_path / "b.jpg", taken="2020:02:29 08:00:00", offset="-09:30")
    )
    assert west.offset_minutes == -570 and west.taken_iso == "2020-02-29T08:00:00-09:30"
    # no original date: the digitized one; an impossible date is no date
    dig = decode.read_facts(exif_photo(tmp_path / "c.jpg", digitized="2018:03:04 05:06:07"))
    assert dig.taken == "2018-03-04T05:06:07" and dig.date_source == DATE_EXIF
    zero = decode.read_facts(exif_photo(tmp_path / "d.jpg", taken="0000:00:00 00:00:00"))
    assert zero.date_source == DATE_FILE


def test_no_exif_falls_back_to_the_file_date_marked_as_such(tmp_path: Path) -> None:
    path = exif_photo(tmp_path / "plain.png", fmt="PNG")
    when = datetime(2015, 7, 14, 9, 26, 53).timestamp()
    os.utime(path, (when, when))
    facts = decode.read_facts(path)
    assert facts.date_source == DATE_FILE
    assert facts.taken == "2015-07-14T09:26:53"
    local = datetime.fromtimestamp(when).astimezone()
    assert facts.offset_minutes == int(local.utcoffset().total_seconds() // 60)
    assert (facts.make, facts.model, facts.lat, facts.lon) == (None, None, None, None)
    assert (facts.width, facts.height) == (96, 64)


@pytest.mark.parametrize(
    "where",
    [(48.8583, 2.2945), (-33.8568, 151.2153), (40.6892, -74.0445), (-22.9519, -43.2105)],
    ids=["N-E", "S-E", "N-W", "S-W"],
)
def test_gps_in_every_hemisphere(tmp_path: Path, where: tuple[float, float]) -> None:
    facts = decode.read_facts(exif_photo(tmp_path / "g.jpg", gps=where))
    assert facts.lat == pytest.approx(where[0], abs=1e-5)
    assert facts.lon == pytest.approx(where[1], abs=1e-5)


def test_facts_from_webp_and_rotated_size(tmp_path: Path) -> None:
    webp = exif_photo(tmp_path / "w.webp", taken="2017:01:02 03:04:05", gps=(-1.5, -2.5))
    facts = decode.read_facts(webp)
    assert facts.taken == "2017-01-02T03:04:05"
    assert facts.lat == pytest.approx(-1.5) and facts.lon == pytest.approx(-2.5)
    turned = exif_photo(tmp_path / "r.jpg", orientation=6, size=(120, 80))
    assert (decode.read_facts(turned).width, decode.read_facts(turned).height) == (80, 120)


def test_bad_exif_values_are_absent_not_errors(tmp_path: Path) -> None:
    path = exif_photo(
        tmp_path / "odd.jpg", taken="not a date", offset="+99:99", make="  ", model="X\x00\x00"
    )
    facts = decode.read_facts(path)
    assert facts.date_source == DATE_FILE
    assert facts.make is None and facts.model == "X"


def test_read_facts_of_a_bad_file_is_a_decode_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo at all")
    with pytest.raises(decode.DecodeError):
        decode.read_facts(bad)


def test_format_taken() -> None:
    assert format_taken("2019-01-01T00:00:00", 0) == "2019-01-01T00:00:00+00:00"
    assert format_taken("2019-01-01T00:00:00", -330) == "2019-01-01T00:00:00-05:30"
    assert format_taken(None, 60) is None
