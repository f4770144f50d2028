"""Checks of a library's stored state: the catalog file, its meta, vectors against ids against
catalog, and learned heads against the backbone. Each finds problems, one line each; nothing
here changes anything (``finder.store.backup.repair`` does).

    problems = catalog_problems(catalog)                  # SQLite integrity_check and meta
    problems += vector_problems(catalog, store)           # every ok photo, every frame one vector
    problems += class_problems(catalog, key, dim, load)   # heads of this backbone, right size
    problems += graph_problems(directory, store)          # the neighbour graph is the vectors'

A problem is a :class:`Problem`: where it is (``catalog``, ``vectors``, ``classes``) and what.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from finder.errors import FinderError
from finder.store import graph
from finder.store.catalog import Catalog
from finder.store.schema import META_TYPES
from finder.store.sqlite import meta_problem

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore

#: At most this many lines of SQLite's integrity_check are reported.
MAX_SQLITE_LINES = 20
#: Stored vectors are unit vectors in float16: norms within this of 1 are fine.
NORM_TOLERANCE = 1e-2
_CHUNK = 8192


@dataclass(frozen=True)
class Problem:
    where: str  # "catalog", "vectors" or "classes"
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def sqlite_problems(conn: sqlite3.Connection, *, quick: bool = False) -> list[str]:
    """SQLite's own check of a database (``quick``: without comparing indexes to tables)."""
    pragma = "quick_check" if quick else "integrity_check"
    try:
        rows = conn.execute(f"PRAGMA {pragma}({MAX_SQLITE_LINES})").fetchall()
    except (sqlite3.Error, FinderError) as e:
        return [getattr(e, "detail", str(e))]
    # a row may hold several lines ("*** in database main ***\nPage 22: ..."): one each
    lines = [
        line.strip()
        for r in rows
        for line in str(r[0]).splitlines()
        if line.strip() and not line.startswith("*** in database")
    ]
    return [] if lines == ["ok"] else lines


def meta_problems(conn: sqlite3.Connection) -> list[str]:
    """Meta values that are not JSON or not of their type, and required keys that are absent."""
    out = []
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except (sqlite3.Error, FinderError) as e:
        return [f"meta unreadable: {getattr(e, 'detail', e)}"]
    for key in META_TYPES:
        if key not in rows:
            if key in ("schema_version",):
                out.append(f"meta {key!r} is missing")
            continue
        try:
            value = json.loads(rows[key])
        except (TypeError, ValueError):
            out.append(f"meta {key!r} is not JSON")
            continue
        problem = meta_problem(key, value)
        if problem:
            out.append(problem)
    return out


def catalog_problems(catalog: Catalog, *, quick: bool = False) -> list[Problem]:
    """The catalog file (SQLite's check) and its meta."""
    lines = sqlite_problems(catalog.db.conn, quick=quick) + meta_problems(catalog.db.conn)
    try:
        bad = catalog.db.execute(
            "SELECT count(*) FROM images WHERE status NOT IN ('pending', 'ok', 'failed')"
        ).fetchone()[0]
        if bad:
            lines.append(f"{bad} images with an unknown status")
        bad = catalog.db.execute(
            "SELECT count(*) FROM images WHERE kind NOT IN ('photo', 'video')"
        ).fetchone()[0]
        if bad:
            lines.append(f"{bad} images of an unknown kind")
    except (sqlite3.Error, FinderError) as e:
        lines.append(f"images unreadable: {getattr(e, 'detail', e)}")
    return [Problem("catalog", line) for line in dict.fromkeys(lines)]


def vector_problems(catalog: Catalog, store: VectorStore, *, settled: bool = True) -> list[Problem]:
    """Every ok photo has one stored vector, and so does every frame of an ok video (which has
    all its frames); every vector belongs to a photo that may hold one (ok, or pending with its
    old vector until the new one replaces it) or to a frame of a video; every vector is a
    finite unit vector. Not ``settled`` (an index run is going on, or was interrupted and the
    next one settles it), vectors and catalog may disagree: only garbage is a problem."""
    out: list[str] = []
    ids = np.asarray(store.ids(), dtype=np.int64)
    unique = np.unique(ids)
    if len(unique) != len(ids):
        out.append(f"{len(ids) - len(unique)} image ids have more than one vector")
    holders = catalog.vector_ids()
    if settled:
        missing = np.setdiff1d(holders.photos, unique)
        if len(missing):
            out.append(
                f"{len(missing)} indexed images have no stored vector (e.g. id {int(missing[0])})"
            )
        missing = np.setdiff1d(holders.frames, unique)
        if len(missing):
            out.append(
                f"{len(missing)} video frames have no stored vector (e.g. id {int(missing[0])})"
            )
        stray = np.setdiff1d(unique, holders.allowed)
        if len(stray):
            out.append(f"{len(stray)} vectors belong to no indexed image (e.g. id {int(stray[0])})")
        lost = catalog.stray_frames()
        if lost:
            out.append(f"{len(lost)} video frames belong to no indexed video (e.g. id {lost[0]})")
        short = catalog.incomplete_videos()
        if short:
            out.append(
                f"{len(short)} indexed videos lack some of their frames (e.g. id {short[0]})"
            )
    out += getattr(store, "check", lambda: [])()  # the raw files' own checksums
    bad = bad_vectors(store, np.intersect1d(unique, holders.allowed))
    if len(bad):
        out.append(f"{len(bad)} stored vectors are not finite unit vectors (e.g. id {int(bad[0])})")
    return [Problem("vectors", line) for line in out]


def graph_problems(directory, store: VectorStore, *, settled: bool = True) -> list[Problem]:
    """The library's neighbour graph (``finder.store.graph``) readable and the vectors' own."""
    return [Problem("graph", line) for line in graph.problems(directory, store, settled=settled)]


def bad_vectors(store: VectorStore, ids: np.ndarray) -> np.ndarray:
    """The ids among ``ids`` whose stored vector is not a finite unit vector (garbage)."""
    bad = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        with np.errstate(all="ignore"):
            v = store.get(chunk)
            norms = np.linalg.norm(v, axis=1)
            wrong = ~np.isfinite(v).all(axis=1) | ~(np.abs(norms - 1.0) <= NORM_TOLERANCE)
        bad.append(chunk[wrong])
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def class_problems(
    catalog: Catalog,
    backbone_key: str,
    dim: int,
    load_head: Callable[[dict[str, Any]], np.ndarray],
) -> list[Problem]:
    """Each learned class: trained on this backbone, a readable head of ``dim`` finite weights,
    and examples whose vectors have ``dim`` values. ``load_head`` turns a stored head into its
    weight vector (raising on a bad one)."""
    out = []
    try:
        names = catalog.class_names()
    except FinderError as e:
        return [Problem("classes", f"unreadable: {e}")]
    for name in names:
        try:
            record = catalog.get_class(name)
        except FinderError as e:
            out.append(f"{name!r}: unreadable ({e})")
            continue
        if record is None:
            continue
        if record["backbone"] != backbone_key:
            out.append(f"{name!r} was learned with another backbone ({record['backbone']})")
        try:
            w = np.asarray(load_head(record["head"]))
            if w.shape != (dim,) or not np.isfinite(w).all():
                out.append(f"{name!r} has a head of {w.shape[0]} weights, not {dim} finite ones")
        except (FinderError, ValueError, TypeError, KeyError) as e:
            out.append(f"{name!r} has an unreadable head ({e})")
        wrong = [e.path for e in catalog.examples(name) if len(e.vector) != 4 * dim]
        if wrong:
            out.append(f"{name!r} has {len(wrong)} examples with vectors of the wrong size")
    return [Problem("classes", line) for line in out]
