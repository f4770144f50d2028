"""Keywords in the catalog: what each photo is filed under, from the photo and its sidecar.

Tables (added by one migration step, :func:`migrate`):

- ``keywords(id, path, leaf)``: each keyword path once (``Animals|Pets|Rex``, its leaf ``Rex``;
  ``finder.ingest.keywords``), indexed by path, so that a keyword and everything below it is
  one range of the index (``path = K`` or ``K|`` ≤ ``path`` < ``K}``).
- ``image_keywords(image_id, keyword_id, source)``: a photo's keywords, ``source`` ``photo``
  (embedded XMP or IPTC, read with its EXIF) or ``sidecar``; indexed by keyword then image
  ("photos with keyword K"). Keywords no photo holds are dropped.
- Columns of ``images``: ``keywords_read`` (1 once the keywords embedded in the photo were read:
  a library indexed before finder kept them reads them from headers, nothing re-embedded),
  ``xmp_stamp`` (the sidecar's size, modification time and name when its keywords were read; ''
  when the photo had none; NULL never looked at) and ``xmp_note`` (why the sidecar could not be
  read: the photo is still indexed, its sidecar ignored, never rewritten).

An index run compares the walk's sidecar stamps with ``xmp_stamp`` (:meth:`sidecars_to_read`):
a sidecar added, changed, renamed or removed is read again (or its keywords dropped) without
the photo being read, let alone re-embedded.

Counts and lists are over ``ok`` images (those with a vector: what can be learned from or
found). :meth:`KeywordTables.keyword_counts` includes the hierarchy's inner nodes (``Animals``
counts every photo under it).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finder.ingest.keywords import SEP, class_names, path_parts
from finder.store.rows import decode_path, path_range

PHOTO, SIDECAR = "photo", "sidecar"  # image_keywords.source
_END = chr(ord(SEP) + 1)  # the first character after the separator: the end of a subtree
# keywords → their photos → the photos' rows, in that order (CROSS JOIN fixes it: a catalog
# without statistics would otherwise start from every ok image)
_FROM_KEYWORDS = (
    "FROM keywords k CROSS JOIN image_keywords ik ON ik.keyword_id = k.id "
    "CROSS JOIN images i ON i.id = ik.image_id"
)


def _prefixes(path: str) -> list[str]:
    """The nodes from the top of a keyword's hierarchy down to itself."""
    parts = path_parts(path)
    return [SEP.join(parts[:k]) for k in range(1, len(parts) + 1)]


def _subtree(path: str, descendants: bool) -> tuple[str, list[Any]]:
    """SQL condition on ``k.path``: the keyword ``path``, and with ``descendants`` every
    keyword below it (one range of the path index)."""
    if not descendants:
        return "k.path = ?", [path]
    return "(k.path = ? OR (k.path >= ? AND k.path < ?))", [path, path + SEP, path + _END]


def migrate(db: Any) -> None:
    """Schema step: the keyword tables, their indexes, and the sidecar columns of ``images``."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS keywords(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, "
        "leaf TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS image_keywords(image_id INTEGER NOT NULL, "
        "keyword_id INTEGER NOT NULL, source TEXT NOT NULL, "
        "PRIMARY KEY (image_id, keyword_id, source)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_image_keywords_keyword "
        "ON image_keywords(keyword_id, image_id)"
    )
    have = {row[1] for row in db.execute("PRAGMA table_info(images)")}
    for name, kind in (("keywords_read", "INTEGER"), ("xmp_stamp", "TEXT"), ("xmp_note", "TEXT")):
        if name not in have:
            db.execute(f"ALTER TABLE images ADD COLUMN {name} {kind}")
    # ok photos whose embedded keywords were never read (indexed before finder kept them)
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_images_no_keywords ON images(path) "
        "WHERE keywords_read IS NULL"
    )


@dataclass(frozen=True)
class KeywordCount:
    """A keyword (or a node of the hierarchy above keywords) and how many ok photos hold it:
    ``photos`` counts those filed under it or below it, ``own`` those filed under it exactly."""

    path: str
    photos: int
    own: int

    @property
    def parts(self) -> list[str]:
        return path_parts(self.path)

    @property
    def leaf(self) -> str:
        return self.parts[-1]

    @property
    def parent(self) -> str | None:
        parts = self.parts
        return SEP.join(parts[:-1]) if len(parts) > 1 else None


@dataclass(frozen=True)
class FolderCount:
    """A folder under a root (``folder``: relative to it, ``/``-separated, "" for the root)
    and how many ok photos it holds: ``own`` directly in it, ``photos`` with its sub-folders."""

    folder: str
    photos: int
    own: int


# -- writing (inside the caller's transaction) -------------------------------------------------
def _keyword_ids(conn: sqlite3.Connection, paths: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(paths))
    conn.executemany(
        "INSERT OR IGNORE INTO keywords(path, leaf) VALUES (?, ?)",
        [(p, path_parts(p)[-1]) for p in wanted],
    )
    return {
        p: int(i)
        for p, i in conn.execute(
            "SELECT k.path, k.id FROM json_each(?) j JOIN keywords k ON k.path = j.value",
            [json.dumps(wanted)],
        )
    }


def _replace(
    conn: sqlite3.Connection, source: str, rows: Sequence[tuple[int, Sequence[str]]]
) -> None:
    """Set the keywords of ``source`` of each image (id, keyword paths)."""
    conn.executemany(
        "DELETE FROM image_keywords WHERE image_id = ? AND source = ?",
        [(int(i), source) for i, _ in rows],
    )
    ids = _keyword_ids(conn, (p for _, paths in rows for p in paths))
    conn.executemany(
        "INSERT OR IGNORE INTO image_keywords(image_id, keyword_id, source) VALUES (?, ?, ?)",
        [(int(i), ids[p], source) for i, paths in rows for p in paths],
    )


def prune(conn: sqlite3.Connection) -> None:
    """Drop the keywords no photo holds any more."""
    conn.execute(
        "DELETE FROM keywords WHERE NOT EXISTS "
        "(SELECT 1 FROM image_keywords ik WHERE ik.keyword_id = keywords.id)"
    )


def write_embedded(conn: sqlite3.Connection, rows: Sequence[tuple[int, Sequence[str]]]) -> None:
    """The keywords embedded in these photos (id, paths), read with their other facts."""
    if not rows:
        return
    _replace(conn, PHOTO, rows)
    conn.executemany(
        "UPDATE images SET keywords_read = 1 WHERE id = ?", [(int(i),) for i, _ in rows]
    )
    prune(conn)


def write_sidecars(
    conn: sqlite3.Connection, rows: Sequence[tuple[int, str, Sequence[str], str | None]]
) -> None:
    """What the sidecars of these photos hold (id, stamp, keyword paths, note when unreadable)."""
    if not rows:
        return
    _replace(conn, SIDECAR, [(i, paths) for i, _, paths, _ in rows])
    conn.executemany(
        "UPDATE images SET xmp_stamp = ?, xmp_note = ? WHERE id = ?",
        [(stamp, note, int(i)) for i, stamp, _, note in rows],
    )
    prune(conn)


def delete(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """The keywords of images leaving the catalog."""
    conn.executemany("DELETE FROM image_keywords WHERE image_id = ?", [(int(i),) for i in ids])
    prune(conn)


def forget(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Forget what was read of these images' keywords, so that the next index run reads them
    again (a catalog repaired from a backup: its keyword rows may not match their stamps)."""
    conn.executemany(
        "UPDATE images SET keywords_read = NULL, xmp_stamp = NULL, xmp_note = NULL WHERE id = ?",
        [(int(i),) for i in ids],
    )
    delete(conn, ids)
    conn.execute(  # and the keywords of images the catalog no longer has
        "DELETE FROM image_keywords WHERE NOT EXISTS "
        "(SELECT 1 FROM images i WHERE i.id = image_keywords.image_id)"
    )
    prune(conn)


def counts(conn: Any) -> dict[str, int]:
    """Among ok images: how many hold at least one keyword, and how many keywords they hold."""
    row = conn.execute(
        "SELECT count(DISTINCT ik.image_id), count(DISTINCT ik.keyword_id) "
        "FROM image_keywords ik JOIN images i ON i.id = ik.image_id WHERE i.status = 'ok'"
    ).fetchone()
    return {"with_keywords": int(row[0] or 0), "keywords": int(row[1] or 0)}


# -- reading ---------------------------------------------------------------------------------
class KeywordTables:
    """Keywords and folders as a person filed them (a part of
    :class:`~finder.store.catalog.Catalog`)."""

    # -- the index run's sidecars -----------------------------------------------------------
    def sidecars_to_read(self) -> list[tuple[int, str | None, str]]:
        """The images of the loaded walk (``load_walk``) whose sidecar is not the one last
        read: (id, sidecar path or None when it has none now, the walk's stamp)."""
        return [
            (int(i), None if p is None else decode_path(p), stamp)
            for i, p, stamp in self.db.execute(
                "SELECT i.id, w.xmp_path, w.xmp_stamp FROM temp.walk w "
                "JOIN images i ON i.path = w.path WHERE i.xmp_stamp IS NOT w.xmp_stamp"
            )
        ]

    def record_sidecars(self, rows: Sequence[tuple[int, str, Sequence[str], str | None]]) -> None:
        """Store what sidecars hold: (id, stamp, keyword paths, note when unreadable)."""
        with self.transaction() as conn:
            write_sidecars(conn, rows)

    def sidecar_notes(self) -> list[tuple[str, str]]:
        """(photo path, why its sidecar was not read) for each photo with such a note."""
        return [
            (decode_path(p), note)
            for p, note in self.db.execute(
                "SELECT path, xmp_note FROM images WHERE xmp_note IS NOT NULL ORDER BY path"
            )
        ]

    # -- keywords ---------------------------------------------------------------------------
    def keywords_of(self, image_id: int) -> list[str]:
        """The keyword paths of one image (from the photo and its sidecar), sorted."""
        return self.keywords_by_image([image_id]).get(int(image_id), [])

    def keywords_by_image(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """The keyword paths of these images (those that hold some), each sorted."""
        out: dict[int, set[str]] = {}
        for i, path in self.db.execute(
            "SELECT ik.image_id, k.path FROM json_each(?) j "
            "JOIN image_keywords ik ON ik.image_id = j.value "
            "JOIN keywords k ON k.id = ik.keyword_id",
            [json.dumps([int(i) for i in ids])],
        ):
            out.setdefault(int(i), set()).add(path)
        return {i: sorted(paths) for i, paths in out.items()}

    def images_with_keyword(
        self, path: str, *, descendants: bool = True, ok_only: bool = True
    ) -> list[int]:
        """Ids of the images filed under keyword ``path`` (and, with ``descendants``, under
        any keyword below it: ``Animals`` finds ``Animals|Pets|Rex``), sorted; only ok images
        unless ``ok_only`` is False."""
        where, params = _subtree(path, descendants)
        sql = f"SELECT DISTINCT ik.image_id {_FROM_KEYWORDS} WHERE {where}"
        if ok_only:
            sql += " AND i.status = 'ok'"
        return sorted(int(r[0]) for r in self.db.execute(sql, params))

    def tagged_ids(self) -> list[int]:
        """Ids of the ok images that hold at least one keyword, sorted."""
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT DISTINCT ik.image_id FROM image_keywords ik "
                "JOIN images i ON i.id = ik.image_id WHERE i.status = 'ok' ORDER BY 1"
            )
        ]

    def keyword_counts(self) -> list[KeywordCount]:
        """Every keyword and every node above one, with its count of ok photos (under it or
        below it; exactly under it), by path. One pass over the keyword rows, counted with
        numpy: each (node, photo) pair once, whichever keywords below the node and sources
        it came from."""
        paths = dict(self.db.execute("SELECT id, path FROM keywords").fetchall())
        if not paths:
            return []
        rows = np.asarray(
            self.db.execute("SELECT keyword_id, image_id FROM image_keywords").fetchall(),
            dtype=np.int64,
        ).reshape(-1, 2)
        ok = np.asarray(
            self.db.execute("SELECT id FROM images WHERE status = 'ok'").fetchall(),
            dtype=np.int64,
        ).reshape(-1)
        rows = rows[np.isin(rows[:, 1], ok)]
        chains = {kid: _prefixes(path) for kid, path in paths.items()}
        nodes = sorted({node for chain in chains.values() for node in chain})
        index = {node: j for j, node in enumerate(nodes)}
        depth = max(len(chain) for chain in chains.values())
        # ancestors[d][keyword id]: the node of its first d + 1 parts (-1: it has fewer)
        ancestors = np.full((depth, max(paths) + 1), -1, dtype=np.int64)
        for kid, chain in chains.items():
            ancestors[: len(chain), kid] = [index[node] for node in chain]
        itself = np.full(max(paths) + 1, -1, dtype=np.int64)
        itself[list(paths)] = [index[p] for p in paths.values()]
        span = int(rows[:, 1].max()) + 1 if len(rows) else 1

        def distinct_per_node(node: np.ndarray, image: np.ndarray) -> np.ndarray:
            # sorted and deduplicated by hand: np.unique hashes int64 here, ten times slower
            keys = np.sort(node[node >= 0] * span + image[node >= 0])
            pairs = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
            return np.bincount(pairs // span, minlength=len(nodes))

        kids, images = rows[:, 0], rows[:, 1]
        below = distinct_per_node(ancestors[:, kids].ravel(), np.tile(images, depth))
        own = distinct_per_node(itself[kids], images)
        return [
            KeywordCount(node, int(below[j]), int(own[j]))
            for j, node in enumerate(nodes)
            if below[j]
        ]

    def keyword_class_names(self, normalise: Callable[[str], str]) -> dict[str, str]:
        """The class each keyword (and each node above one) becomes: its leaf, normalised by
        ``normalise`` (``finder.learn.names.class_name``), or its path where two share a leaf
        (``finder.ingest.keywords.class_names``). Keywords of ok photos only."""
        return class_names((c.path for c in self.keyword_counts()), normalise)

    # -- folders ----------------------------------------------------------------------------
    def folder_counts(self, root: str) -> list[FolderCount]:
        """Every folder under ``root`` holding ok photos (directly or below), with its
        counts, by path (``""`` is ``root`` itself)."""
        root = os.path.abspath(root).rstrip(os.sep) or os.sep
        lo, hi = path_range(root)
        sep = os.fsencode(os.sep)
        by_folder: dict[bytes, int] = {}
        for (p,) in self.db.execute(
            "SELECT path FROM images WHERE path >= ? AND path < ? AND status = 'ok'", [lo, hi]
        ):
            folder = bytes(p[len(lo) : max(len(lo), p.rfind(sep))])  # relative to root
            by_folder[folder] = by_folder.get(folder, 0) + 1
        own = {decode_path(f).replace(os.sep, "/"): n for f, n in by_folder.items()}
        total: dict[str, int] = {}
        for folder, n in own.items():
            parts = folder.split("/") if folder else []
            for k in range(len(parts) + 1):
                key = "/".join(parts[:k])
                total[key] = total.get(key, 0) + n
        return [FolderCount(f, total[f], own.get(f, 0)) for f in sorted(total)]
