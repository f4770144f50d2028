"""The catalog's SQLite connection: damage met by any statement becomes one line
(:class:`~finder.errors.LibraryDamaged`) naming ``finder repair``; transactions."""

from __future__ import annotations

import functools
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from typing import Any

from finder.errors import FinderError, LibraryDamaged, LibraryError, LibraryLocked
from finder.store.schema import BACKBONE_KEYS, META_TYPES


class CatalogTooOld(LibraryError):
    """A catalog of an older schema, opened read-only: it cannot be migrated there."""


def damaged(path: os.PathLike | str, what: str) -> LibraryDamaged:
    """The one-line error for damage found in the catalog at ``path`` (``what``: its
    ``detail``)."""
    what = "; ".join(line.strip() for line in str(what).splitlines() if line.strip())
    error = LibraryDamaged(f"the catalog {path} is damaged ({what}); run `finder repair`")
    error.detail = what  # type: ignore[attr-defined]
    return error


def meta_problem(key: str, value: Any) -> str | None:
    """Why a decoded meta value cannot be right, or None."""
    types = META_TYPES.get(key)
    if types is None:
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return f"meta {key!r} holds {_short_repr(value)}"
    if key == "backbone":
        for name, kinds in BACKBONE_KEYS.items():
            v = value.get(name)
            if not isinstance(v, kinds) or isinstance(v, bool):
                return f"meta 'backbone' lacks a valid {name!r}"
        if value["dim"] <= 0 or int(value.get("views", 1) or 0) not in (1, 2, 4):
            return "meta 'backbone' holds impossible values"
    return None


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sqlite_error(e: sqlite3.Error, path: os.PathLike | str) -> FinderError | None:
    """Our one-line error for an SQLite error that is not a bug of ours, or None."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return damaged(path, text)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LibraryLocked(f"the catalog {path} is busy ({text}); try again")
    if name.startswith("SQLITE_READONLY"):
        return LibraryError(f"the catalog {path} is read-only ({text})")
    if name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return LibraryError(f"cannot use the catalog {path}: {text}")
    return None


def _ours(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of ``sqlite3.Cursor`` with its SQLite errors made ours (``sqlite_error``)."""

    @functools.wraps(method)
    def call(self: sqlite3.Cursor, *args: Any) -> Any:
        try:
            return method(self, *args)
        except sqlite3.Error as e:
            path = self.connection.catalog_path  # type: ignore[attr-defined]
            raise sqlite_error(e, path) or e from None

    return call


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors (at execute or while rows are read) become ours."""

    execute = _ours(sqlite3.Cursor.execute)
    executemany = _ours(sqlite3.Cursor.executemany)
    __next__ = _ours(sqlite3.Cursor.__next__)
    fetchall = _ours(sqlite3.Cursor.fetchall)
    fetchmany = _ours(sqlite3.Cursor.fetchmany)


class _Connection(sqlite3.Connection):
    """A connection whose statements run on :class:`_Cursor`."""

    catalog_path: str = ""

    def execute(self, *args: Any) -> _Cursor:  # type: ignore[override]
        return self.cursor(_Cursor).execute(*args)

    def executemany(self, *args: Any) -> _Cursor:  # type: ignore[override]
        return self.cursor(_Cursor).executemany(*args)


def connect(path: os.PathLike | str, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the catalog file at ``path`` whose errors are ours. ``read_only`` opens
    it without ever writing (falling back to ``immutable`` when its folder cannot be written,
    where SQLite could not create the WAL's shared-memory file)."""
    path = str(path)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    attempts = [(uri + "?mode=ro", True)] if read_only else [(path, False)]
    if read_only:
        attempts.append((uri + "?mode=ro&immutable=1", True))
    error: Exception | None = None
    for target, is_uri in attempts:
        conn = None
        try:
            conn = sqlite3.connect(
                target, timeout=30, isolation_level=None, uri=is_uri, factory=_Connection
            )
            conn.catalog_path = path  # type: ignore[attr-defined]
            if read_only:  # the WAL's shared memory must be reachable, else try immutable
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except (FinderError, sqlite3.Error) as e:
            if conn is not None:
                conn.close()
            error = e
    if isinstance(error, FinderError):
        raise error
    assert isinstance(error, sqlite3.Error)
    raise sqlite_error(error, path) or LibraryError(f"cannot open the catalog {path}: {error}")


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
