"""Photo facts in the catalog, and the filters of ``find`` and ``similar`` over them.

The facts (``finder.ingest.facts.PhotoFacts``) live in columns of ``images`` (added by the
catalog's migration to version 2): ``taken`` (local wall-clock text "YYYY-MM-DDTHH:MM:SS", so
that text order is time order), ``taken_offset`` (minutes east of UTC, when known),
``date_source`` ("exif", "container" for a video's own date, or "file" for the file's
modification time; NULL until the facts are read), ``camera_id`` (a row of the small
``cameras`` table: make and model), ``lens``, ``lat``, ``lon``, ``width``, ``height``.
Indexes on ``taken``, ``camera_id`` and ``lat`` (with the one on ``path``) let each filter
find its images without a scan.

:class:`Filters` is what a person can narrow an answer by: taken after / before a date, a
camera (a case-insensitive part of "make model"), a folder, a distance from a point. The
catalog answers two questions about them: which ok images pass (``allowed``, optionally only
if there are few) and which of given ids pass (``passing``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from finder.errors import Arg, UsageError
from finder.ingest.facts import format_taken
from finder.store.rows import path_range

if TYPE_CHECKING:
    import sqlite3

    from finder.ingest.facts import PhotoFacts
    from finder.store.catalog import Catalog

EARTH_RADIUS_KM = 6371.0088
DEFAULT_WITHIN_KM = 10.0

FACT_COLUMNS = (
    ("taken", "TEXT"),
    ("taken_offset", "INTEGER"),
    ("date_source", "TEXT"),
    ("camera_id", "INTEGER"),
    ("lens", "TEXT"),
    ("lat", "REAL"),
    ("lon", "REAL"),
    ("width", "INTEGER"),
    ("height", "INTEGER"),
)


def migrate(db: Any) -> None:
    """Schema step: the fact columns of ``images``, the ``cameras`` table, their indexes."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS cameras(id INTEGER PRIMARY KEY, make TEXT NOT NULL, "
        "model TEXT NOT NULL, UNIQUE(make, model))"
    )
    have = {row[1] for row in db.execute("PRAGMA table_info(images)")}
    for name, kind in FACT_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE images ADD COLUMN {name} {kind}")
    for name in ("taken", "camera_id", "lat"):  # (camera_id, lat: other indexes at step 5)
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_images_{name} ON images({name})")


def write(conn: sqlite3.Connection, rows: Sequence[tuple[int, PhotoFacts]]) -> None:
    """Store the facts of images (id, facts), inside the caller's transaction."""
    if not rows:
        return
    cameras: dict[tuple[str, str], int] = {}
    values = []
    for image_id, f in rows:
        camera_id = None
        if f.make or f.model:
            key = (f.make or "", f.model or "")
            if key not in cameras:
                conn.execute("INSERT OR IGNORE INTO cameras(make, model) VALUES (?, ?)", key)
                cameras[key] = conn.execute(
                    "SELECT id FROM cameras WHERE make = ? AND model = ?", key
                ).fetchone()[0]
            camera_id = cameras[key]
        values.append(
            (
                f.taken,
                f.offset_minutes,
                f.date_source,
                camera_id,
                f.lens,
                f.lat,
                f.lon,
                f.width,
                f.height,
                int(image_id),
            )
        )
    sets = ", ".join(f"{name} = ?" for name, _ in FACT_COLUMNS)
    conn.executemany(f"UPDATE images SET {sets} WHERE id = ?", values)


def counts(conn: Any) -> dict[str, int]:
    """Among ok images: how many have a date of their own (EXIF, a video's container), only
    the file's date, a GPS position."""
    row = conn.execute(
        "SELECT sum(date_source IN ('exif', 'container')), sum(date_source = 'file'), "
        "sum(lat IS NOT NULL AND lon IS NOT NULL) FROM images WHERE status = 'ok'"
    ).fetchone()
    return {
        "with_date": int(row[0] or 0),
        "with_file_date": int(row[1] or 0),
        "with_position": int(row[2] or 0),
    }


# -- filters ---------------------------------------------------------------------------------

_DATE_TEXT = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?$"
)


def parse_date(text: str | date | datetime, field: str = "date") -> str:
    """A date (YYYY, YYYY-MM, YYYY-MM-DD, or with THH:MM[:SS]) as the start of that period,
    "YYYY-MM-DDTHH:MM:SS"; a one-line ``UsageError`` about the argument ``field`` for anything
    else."""
    if isinstance(text, datetime):
        return text.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(text, date):
        return text.strftime("%Y-%m-%dT00:00:00")
    m = _DATE_TEXT.match(str(text).strip())
    try:
        if m is None:
            raise ValueError
        parts = [int(g) if g else d for g, d in zip(m.groups(), (0, 1, 1, 0, 0, 0), strict=True)]
        return datetime(*parts).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise UsageError(
            Arg(field),
            f": cannot read {str(text)!r} as a date (use YYYY, YYYY-MM, YYYY-MM-DD "
            "or YYYY-MM-DDTHH:MM)",
        ) from None


def parse_point(text: str | Sequence[float], field: str = "near") -> tuple[float, float]:
    """ "LAT,LON" in decimal degrees (south and west negative) as a checked pair."""
    try:
        if isinstance(text, str):
            parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
        else:
            parts = list(text)
        lat, lon = (float(p) for p in parts)
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(
            Arg(field),
            f": cannot read {text!r} as LAT,LON in decimal degrees (e.g. 48.858,2.294)",
        ) from None
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise UsageError(
            Arg(field),
            f": {lat:g},{lon:g} is off the globe (latitude -90..90, longitude -180..180)",
        )
    return lat, lon


def folder_under(under: str | os.PathLike[str]) -> str:
    """The folder of an ``under`` argument (``find --under``, ``dupes --under``) as an
    absolute path; one ``UsageError`` naming the argument when it is empty or not a folder."""
    given = os.fspath(under)
    if not given:
        raise UsageError(Arg("under"), ": an empty path names no folder")
    folder = os.path.abspath(os.path.expanduser(given))
    if not os.path.isdir(folder):
        what = "not a folder" if os.path.exists(folder) else "no such folder"
        raise UsageError(Arg("under"), f": {what}: {given}")
    return folder


@dataclass(frozen=True)
class Filters:
    """What to narrow an answer to; every field optional, all given ones must hold.

    ``after`` / ``before``: dates (text as ``parse_date`` reads, or ``date``/``datetime``); a
    photo passes ``after`` when taken at or after the start of that day (month, year), and
    ``before`` when taken before its start. ``camera``: a case-insensitive part of the camera's
    "make model". ``under``: a folder (its sub-folders included; ``/a/b2`` is not under
    ``/a/b``). ``near``: "LAT,LON" or a pair, with ``within_km`` (default 10 km). Values are
    checked and normalised on construction (a one-line ``UsageError`` when bad).
    """

    after: str | None = None
    before: str | None = None
    camera: str | None = None
    under: str | None = None
    near: tuple[float, float] | None = None
    within_km: float | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        if self.after is not None:
            put(self, "after", parse_date(self.after, "after"))
        if self.before is not None:
            put(self, "before", parse_date(self.before, "before"))
        if self.after and self.before and self.after >= self.before:
            raise UsageError(
                Arg("after"), f" {self.after} is not before ", Arg("before"), f" {self.before}"
            )
        if self.camera is not None:
            camera = " ".join(str(self.camera).split())
            if not camera:
                raise UsageError(Arg("camera"), " needs some text (a part of the make or model)")
            put(self, "camera", camera)
        if self.under is not None:
            put(self, "under", folder_under(self.under))
        if self.within_km is not None:
            try:
                km = float(self.within_km)
            except (TypeError, ValueError):
                km = float("nan")
            if not (math.isfinite(km) and km > 0):
                raise UsageError(
                    Arg("within_km"), f" takes a distance in km above 0, not {self.within_km}"
                )
            if self.near is None:
                raise UsageError(Arg("within_km"), " goes with ", Arg("near"), " LAT,LON")
            put(self, "within_km", km)
        if self.near is not None:
            put(self, "near", parse_point(self.near))
            if self.within_km is None:
                put(self, "within_km", DEFAULT_WITHIN_KM)

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def where(self, conn: Any, alias: str = "") -> tuple[str, list[Any]]:
        """SQL conditions on ``images`` (named ``alias`` in the query, if given) and their
        parameters; the distance is only bounded by a box here (``keep_near`` finishes it)."""
        c = f"{alias}." if alias else ""
        # No status condition: only ok images have vectors to be found (and answers keep only
        # ok images), so each filter can be answered from its index alone.
        sql = ["1"]
        params: list[Any] = []
        if self.after is not None:
            sql.append(f"{c}taken >= ?")
            params.append(self.after)
        if self.before is not None:
            sql.append(f"{c}taken < ?")
            params.append(self.before)
        if self.camera is not None:
            ids = _camera_ids(conn, self.camera)
            sql.append(f"{c}camera_id IN ({','.join(map(str, ids)) or 'NULL'})")
        if self.under is not None:
            lo, hi = path_range(self.under)
            sql.append(f"{c}path >= ? AND {c}path < ?")
            params += [lo, hi]
        if self.near is not None:
            (lat_lo, lat_hi), lon_ranges = _box(*self.near, float(self.within_km or 0))
            sql.append(f"{c}lat BETWEEN ? AND ?")
            params += [lat_lo, lat_hi]
            if lon_ranges is not None:
                either = " OR ".join(f"{c}lon BETWEEN ? AND ?" for _ in lon_ranges)
                sql.append(f"({either})")
                params += [v for r in lon_ranges for v in r]
        return " AND ".join(sql), params

    def keep_near(self, ids: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The ids within ``within_km`` of ``near`` (great-circle distance)."""
        if self.near is None or not len(ids):
            return ids
        return ids[distance_km(self.near, lat, lon) <= float(self.within_km or 0)]


def distance_km(point: tuple[float, float], lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) distances in km from ``point`` to each (lat, lon)."""
    p1, l1 = math.radians(point[0]), math.radians(point[1])
    p2, l2 = np.radians(np.asarray(lat, dtype=np.float64)), np.radians(np.asarray(lon, np.float64))
    a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _box(
    lat: float, lon: float, km: float
) -> tuple[tuple[float, float], list[tuple[float, float]] | None]:
    """Latitude range and longitude ranges (None: all) holding every point within ``km``."""
    d = math.degrees(km / EARTH_RADIUS_KM) + 1e-9
    lat_lo, lat_hi = lat - d, lat + d
    if lat_lo <= -90.0 or lat_hi >= 90.0 or d >= 90.0:  # a pole is inside: every longitude
        return (max(lat_lo, -90.0), min(lat_hi, 90.0)), None
    ratio = math.sin(math.radians(d)) / math.cos(math.radians(lat))
    dlon = math.degrees(math.asin(min(1.0, ratio)))
    lo, hi = lon - dlon - 1e-9, lon + dlon + 1e-9
    if lo < -180.0:  # across the antimeridian
        return (lat_lo, lat_hi), [(-180.0, hi), (lo + 360.0, 180.0)]
    if hi > 180.0:
        return (lat_lo, lat_hi), [(lo, 180.0), (-180.0, hi - 360.0)]
    return (lat_lo, lat_hi), [(lo, hi)]


def _camera_ids(conn: Any, text: str) -> list[int]:
    needle = text.casefold()
    return [
        int(i)
        for i, make, model in conn.execute("SELECT id, make, model FROM cameras")
        if needle in " ".join(f"{make} {model}".split()).casefold()
    ]


def allowed(cat: Catalog, filters: Filters, limit: int | None = None) -> np.ndarray | None:
    """Sorted ids of the images passing ``filters`` (whatever their status: only ok images
    have vectors to be found); with ``limit``, None when more than ``limit`` rows pass the SQL
    part (so that a broad filter costs little to ask about)."""
    where, params = filters.where(cat.db.conn, "i")
    cols = "i.lat, i.lon" if filters.near is not None else ""
    # a video's frames (the vectors that stand for it) pass when it does
    sql = (
        f"SELECT i.id{', ' + cols if cols else ''} FROM images i WHERE {where} UNION ALL "
        f"SELECT f.id{', ' + cols if cols else ''} FROM frames f "
        f"CROSS JOIN images i ON i.id = f.video_id WHERE {where}"
    )
    params = [*params, *params]
    if limit is not None:
        sql += f" LIMIT {int(limit) + 1}"
    rows = cat.db.conn.execute(sql, params).fetchall()
    if limit is not None and len(rows) > limit:
        return None
    return _finish(filters, rows)


def passing(cat: Catalog, filters: Filters, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """The ids among ``ids`` that pass ``filters``, sorted (a frame's id passes when its
    video does)."""
    ids = np.asarray(ids, dtype=np.int64)
    if not len(ids):
        return ids
    where, params = filters.where(cat.db.conn, "i")
    cols = "j.value, i.lat, i.lon" if filters.near is not None else "j.value"
    sql = (
        f"SELECT {cols} FROM json_each(?) j LEFT JOIN frames f ON f.id = j.value "
        f"CROSS JOIN images i ON i.id = coalesce(f.video_id, j.value) WHERE {where}"
    )
    rows = cat.db.conn.execute(sql, [json.dumps(ids.tolist()), *params]).fetchall()
    return _finish(filters, rows)


def _finish(filters: Filters, rows: list[tuple]) -> np.ndarray:
    if filters.near is None:
        return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    ids = arr[:, 0].astype(np.int64)
    return np.sort(filters.keep_near(ids, arr[:, 1], arr[:, 2]))


def dates(cat: Catalog, ids: Sequence[int]) -> dict[int, str]:
    """Date taken of these images (those that have one), with its UTC offset when known."""
    rows = cat.db.conn.execute(
        "SELECT i.id, i.taken, i.taken_offset FROM json_each(?) j "
        "CROSS JOIN images i ON i.id = j.value WHERE i.taken IS NOT NULL",
        [json.dumps([int(i) for i in ids])],
    )
    return {int(i): format_taken(t, off) or t for i, t, off in rows}


def sizes_and_dates(
    cat: Catalog, ids: Sequence[int]
) -> dict[int, tuple[int | None, int | None, str | None]]:
    """Width and height (as shown) and date taken (local wall-clock text) of these images, for
    those whose facts were read."""
    rows = cat.db.conn.execute(
        "SELECT i.id, i.width, i.height, i.taken FROM json_each(?) j "
        "CROSS JOIN images i ON i.id = j.value WHERE i.date_source IS NOT NULL",
        [json.dumps([int(i) for i in ids])],
    )
    return {int(i): (w, h, t) for i, w, h, t in rows}
