"""A catalog as an older finder left it: the schema just before a given migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import sqlite_utils

from finder.store.catalog import MIGRATIONS


def catalog_before(path: Path, marker: str) -> tuple[sqlite3.Connection, sqlite_utils.Database]:
    """A catalog at ``path`` migrated up to the migration whose docstring names ``marker`` (its
    number changes as branches merge), with one class, ``cat``; left open for the test's rows
    (the caller commits and closes)."""
    step = next(v for v, s in enumerate(MIGRATIONS) if marker in (s.__doc__ or ""))
    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    db["meta"].create({"key": str, "value": str}, pk="key")
    for migrate in MIGRATIONS[:step]:
        migrate(db)
    db["meta"].insert({"key": "schema_version", "value": str(step)})
    row = {"backbone": "bb", "n_pos": 1, "n_neg": 0, "created": 1.0, "updated": 1.0}
    db["classes"].insert({"name": "cat", "head": json.dumps({"threshold": 0.4}), **row})
    return conn, db
