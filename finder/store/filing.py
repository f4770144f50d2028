"""Classes made from what a person filed (issue 25), in the catalog.

Tables (added by the keywords' migration step, :func:`migrate`):

- ``filing(class_name, source, key, siblings, digest)``: the class ``class_name`` was made from
  a keyword (``source`` ``keyword``, ``key`` its path, ``Flowers|Daisy``) or a folder (``folder``,
  ``key`` its absolute path); ``siblings`` (JSON) the keys learned beside it (the other
  children of its parent: their photos are its counter-examples, and a photo is suggested for
  one of them at most); ``digest`` the examples it was trained from last (:func:`digest`:
  its filed photos, the backbone, the seed) and ``sketch`` (schema 12) a bottom-k MinHash of
  the counter-examples it was trained against (:func:`sketch`), so that a refresh retrains only
  the classes whose own examples changed or whose counter-examples drifted (:func:`drift`);
  NULL (a catalog from before, a row put back otherwise): not known, the next refresh retrains.
- ``sidecar_writes(class_name, path, sidecar, added)``: the keywords ``finder suggest --apply``
  wrote into a photo's sidecar (``added``: JSON of ``[property, value]``, only what was not
  there), so that they can be taken back (``--unapply``) and nothing else.

The filed photos are never copied into ``examples``: they are read from the keyword tables or
the folders when the class is trained (:func:`filed_ids`), so a keyword removed from a photo
removes the example at the next refresh. The person's own ✓ and ✗ stay in ``examples``, and win
over the filing (a ✗ on a filed photo makes it a counter-example).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from finder.ingest.keywords import SEP
from finder.store.rows import decode_path, encode_path

KEYWORD, FOLDER = "keyword", "folder"
SOURCES = (KEYWORD, FOLDER)
MAX_COUNTER_EXAMPLES = 2000  # the siblings' photos a class is trained against, at most
MAX_FILED = 5000  # a class's filed photos it is trained from, at most (a sample beyond)
SKETCH_SIZE = 256  # the counter-examples' sketch: the hashes of this many of them, at most


@dataclass(frozen=True)
class FilingRecord:
    """Where class ``name`` came from (see the module docstring)."""

    name: str
    source: str  # KEYWORD or FOLDER
    key: str
    siblings: tuple[str, ...] = ()
    digest: str = ""
    sketch: bytes | None = None  # the counter-examples trained against (None: not known)

    def trained_on(
        self, name: str, positives: np.ndarray, negatives: np.ndarray, backbone: str, seed: int
    ) -> FilingRecord:
        """This filing as class ``name`` trained from ``positives`` and against ``negatives``
        (ids, as :meth:`FilingTables.filed_ids` draws them with ``seed``) with ``backbone``
        records it: their digest and sketch."""
        return replace(
            self,
            name=name,
            digest=digest(positives, backbone, seed),
            sketch=sketch(negatives, seed),
        )


def migrate(db: Any) -> None:
    """Schema step (with the keyword tables): the ``filing`` and ``sidecar_writes`` tables."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS filing(class_name TEXT PRIMARY KEY, source TEXT NOT NULL, "
        "key TEXT NOT NULL, siblings TEXT NOT NULL DEFAULT '[]', digest TEXT NOT NULL DEFAULT '')"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS sidecar_writes(class_name TEXT NOT NULL, path BLOB NOT NULL, "
        "sidecar TEXT NOT NULL, added TEXT NOT NULL, PRIMARY KEY (class_name, path))"
    )


def migrate_sketch(db: Any) -> None:
    """Schema step: the ``sketch`` column of ``filing`` (NULL for the classes filed before:
    their next refresh retrains them)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(filing)")}
    if "sketch" not in have:
        db.execute("ALTER TABLE filing ADD COLUMN sketch BLOB")


def digest(positives: np.ndarray, backbone: str, seed: int) -> str:
    """What a filed class learns its class from: its filed photos (ids), the backbone and the
    seed. Any of them changed, the class is trained again."""
    h = hashlib.sha1(backbone.encode())
    h.update(str(seed).encode())
    h.update(np.asarray(positives, dtype=np.int64).tobytes())
    return h.hexdigest()


def _hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit hash of each id with ``seed`` (splitmix64's finaliser)."""
    z = np.asarray(ids, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _sample(ids: np.ndarray, at_most: int, seed: int) -> np.ndarray:
    """At most ``at_most`` of ``ids`` (sorted), drawn at random with ``seed``, the same ones
    whatever else is in ``ids``: those whose hash of (id, seed) is smallest. A photo filed or
    unfiled changes the sample of the classes it is drawn in, not of every sibling (a draw of
    the whole set again would)."""
    if len(ids) <= at_most:
        return ids
    z = _hash(ids, seed)
    return np.sort(np.asarray(ids)[np.argpartition(z, at_most - 1)[:at_most]])


def sketch(negatives: np.ndarray, seed: int) -> bytes:
    """A bottom-k MinHash of a class's counter-examples: the ``SKETCH_SIZE`` smallest hashes
    of their ids (sorted, little-endian uint64). ``_sample`` keeps the ids of smallest hash
    (``MAX_COUNTER_EXAMPLES`` ≥ ``SKETCH_SIZE``), so the sketch of the sample is the sketch of
    every counter-example; it holds the whole set while it has ``SKETCH_SIZE`` ids or fewer."""
    z = np.sort(_hash(np.asarray(negatives, dtype=np.int64), seed))[:SKETCH_SIZE]
    return z.astype("<u8").tobytes()


def drift(before: bytes, now: bytes) -> float:
    """The share of the counter-examples that changed between two sketches (0: the same
    set; 1: nothing in common): one less their Jaccard similarity, estimated on the
    ``SKETCH_SIZE`` smallest hashes of both (exact while both sets fit in a sketch; else with
    a standard error of √(d(1-d)/SKETCH_SIZE) at most, 0.014 at a drift d of 5 %)."""
    a, b = np.frombuffer(before, dtype="<u8"), np.frombuffer(now, dtype="<u8")
    if not len(a) and not len(b):
        return 0.0
    union = np.union1d(a, b)[:SKETCH_SIZE]  # the sketch of the union of the two sets
    both = np.isin(union, a) & np.isin(union, b)  # the photos of the union in both sets
    return float(len(union) - both.sum()) / len(union)


class FilingTables:
    """Filed classes and the sidecar keywords finder wrote (a part of
    :class:`~finder.store.catalog.Catalog`)."""

    def get_filing(self, name: str) -> FilingRecord | None:
        row = self.db.execute(
            "SELECT class_name, source, key, siblings, digest, sketch FROM filing "
            "WHERE class_name = ?",
            [name],
        ).fetchone()
        if row is None:
            return None
        sketch = None if row[5] is None else bytes(row[5])
        return FilingRecord(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], sketch)

    def filings(self) -> list[FilingRecord]:
        """Every filed class, by name."""
        names = [r[0] for r in self.db.execute("SELECT class_name FROM filing ORDER BY 1")]
        return [f for n in names if (f := self.get_filing(n)) is not None]

    def save_filing(self, record: FilingRecord) -> None:
        """Insert or replace a class's filing (inside the caller's transaction)."""
        self.db.execute(
            "INSERT INTO filing(class_name, source, key, siblings, digest, sketch)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(class_name) DO UPDATE SET"
            " source = excluded.source, key = excluded.key, siblings = excluded.siblings,"
            " digest = excluded.digest, sketch = excluded.sketch",
            [
                record.name,
                record.source,
                record.key,
                json.dumps(list(record.siblings)),
                record.digest,
                record.sketch,
            ],
        )

    def source_ids(self, source: str, key: str) -> np.ndarray:
        """The ok images filed under one keyword (and below it) or in one folder (and below
        it), sorted."""
        if source == KEYWORD:
            ids = self.images_with_keyword(key)
        else:
            ids = self.ids_under(key, "ok")
        return np.unique(np.asarray(ids, dtype=np.int64))

    def filed_under_any(self, source: str, keys: Sequence[str]) -> np.ndarray:
        """The ok images filed under any of ``keys`` (and below each), sorted: for keywords one
        query over the keyword ids (a class's siblings are every other class filed the same
        way: one query each would make a filing of K keywords K² queries)."""
        if not keys:
            return np.zeros(0, np.int64)
        if source != KEYWORD:
            return np.unique(np.concatenate([self.source_ids(source, k) for k in keys]))
        wanted = set(keys)
        below = [  # the keywords that are one of ``keys`` or below one
            kid
            for kid, path in self.db.execute("SELECT id, path FROM keywords")
            if any(node in wanted for node in _nodes(path))
        ]
        rows = self.db.execute(
            "SELECT DISTINCT ik.image_id FROM json_each(?) j CROSS JOIN image_keywords ik"
            " ON ik.keyword_id = j.value CROSS JOIN images i ON i.id = ik.image_id"
            " WHERE i.status = 'ok'",
            [json.dumps(below)],
        )
        return np.unique(np.fromiter((r[0] for r in rows), dtype=np.int64))

    def filed_draw(self, source: str, keys: Iterable[str]) -> FiledDraw:
        """The ok images filed under each of ``keys`` (and below each), as :meth:`source_ids`
        answers them, read once: what :meth:`filed_ids` draws from, for many classes. Keywords
        in one pass over the keyword rows (a keyword's photos go to each of its nodes that is
        one of ``keys``); folders one index range each."""
        wanted = sorted(set(keys))
        if source != KEYWORD:
            return FiledDraw(source, {k: self.source_ids(source, k) for k in wanted})
        index = {k: j for j, k in enumerate(wanted)}
        nodes = {  # keyword id → the keys it is, or is below
            kid: [index[n] for n in _nodes(path) if n in index]
            for kid, path in self.db.execute("SELECT id, path FROM keywords")
        }
        pairs = np.asarray(
            self.db.execute(
                "SELECT ik.keyword_id, ik.image_id FROM image_keywords ik"
                " JOIN images i ON i.id = ik.image_id WHERE i.status = 'ok'"
            ).fetchall(),
            dtype=np.int64,
        ).reshape(-1, 2)
        sizes = np.zeros(max(nodes, default=0) + 1, dtype=np.int64)
        for kid, js in nodes.items():
            sizes[kid] = len(js)
        at = np.concatenate([[0], np.cumsum(sizes)])  # keyword id → its keys (CSR: flat[at:])
        flat = np.zeros(at[-1], dtype=np.int64)
        for kid, js in nodes.items():
            flat[at[kid] : at[kid] + len(js)] = js
        counts = at[pairs[:, 0] + 1] - at[pairs[:, 0]]
        image = np.repeat(pairs[:, 1], counts)
        key = flat[np.repeat(at[pairs[:, 0]], counts) + _ramp(counts)]
        order = np.lexsort((image, key))
        key, image = key[order], image[order]
        bounds = np.searchsorted(key, np.arange(len(wanted) + 1))
        return FiledDraw(
            source,
            {k: np.unique(image[bounds[j] : bounds[j + 1]]) for j, k in enumerate(wanted)},
        )

    def filed_ids(
        self, record: FilingRecord, marked: dict[int, int], seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(examples, counter-examples) of a filed class, by id: its filed photos, and the
        photos filed under its siblings and not under it; ``marked`` (id → the person's label)
        wins over both (those photos are left out here: they are the person's marks)."""
        own = self.source_ids(record.source, record.key)
        rest = np.setdiff1d(self.filed_under_any(record.source, record.siblings), own)
        if marked:
            mine = np.asarray(list(marked), dtype=np.int64)
            own, rest = np.setdiff1d(own, mine), np.setdiff1d(rest, mine)
        return _sample(own, MAX_FILED, seed), _sample(rest, MAX_COUNTER_EXAMPLES, seed)

    # -- what suggest --apply wrote -----------------------------------------------------------
    def record_write(self, name: str, path: str, sidecar: str, added: Sequence) -> None:
        """What was added to ``path``'s sidecar for class ``name`` (merged with any earlier)."""
        row = self.db.execute(
            "SELECT added FROM sidecar_writes WHERE class_name = ? AND path = ?",
            [name, encode_path(path)],
        ).fetchone()
        before = [tuple(a) for a in json.loads(row[0])] if row else []
        merged = list(dict.fromkeys([*before, *(tuple(a) for a in added)]))
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO sidecar_writes(class_name, path, sidecar, added) "
                "VALUES (?, ?, ?, ?)",
                [name, encode_path(path), sidecar, json.dumps(merged)],
            )

    def written(self, name: str, path: str) -> tuple[str, list[tuple[str, str]]] | None:
        """(sidecar, [property, value]...) finder wrote for class ``name`` into ``path``'s
        sidecar, or None."""
        row = self.db.execute(
            "SELECT sidecar, added FROM sidecar_writes WHERE class_name = ? AND path = ?",
            [name, encode_path(path)],
        ).fetchone()
        return None if row is None else (row[0], [tuple(a) for a in json.loads(row[1])])

    def written_paths(self, name: str) -> list[str]:
        return [
            decode_path(p)
            for (p,) in self.db.execute(
                "SELECT path FROM sidecar_writes WHERE class_name = ? ORDER BY path", [name]
            )
        ]

    def forget_write(self, name: str, path: str) -> None:
        with self.transaction():
            self.db.execute(
                "DELETE FROM sidecar_writes WHERE class_name = ? AND path = ?",
                [name, encode_path(path)],
            )


class FiledDraw:
    """The photos filed under each of a set of keys (keywords or folders, ``source``) read
    once, and each class's examples and counter-examples drawn from them exactly as
    :meth:`FilingTables.filed_ids` draws them from the catalog: without reading every sibling's
    photos again for each class (a filing of K keywords over N photos would read K x N).

    The counter-examples ``_sample`` keeps are the ids of smallest hash among the photos filed
    under a sibling, not under the class and not marked: every filed photo is put in the order
    of its hash once (a seed), and a class walks that order from the start, taking the photos
    that qualify until it has ``MAX_COUNTER_EXAMPLES`` (most do: it reads about that many).

    A snapshot of the keywords and folders: built for one run (``finder.filing``'s learning and
    the trainings it asks for), in which they are not written; never kept beyond it."""

    def __init__(self, source: str, members: dict[str, np.ndarray]) -> None:
        self.source = source
        self._members = members  # key → its photos' ids, sorted (``source_ids``)
        self._index = {key: j for j, key in enumerate(members)}
        sizes = [len(ids) for ids in members.values()]
        pairs = np.concatenate([np.zeros(0, np.int64), *members.values()]).astype(np.int64)
        self._photos = np.unique(pairs)  # every photo filed under one of the keys
        self._rows = np.searchsorted(self._photos, pairs)  # (photo, key) pairs
        self._cols = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        self._orders: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def ids(self, key: str) -> np.ndarray:
        """The photos filed under ``key`` (and below it), sorted (a key not read: KeyError)."""
        return self._members[key]

    def covers(self, record: FilingRecord) -> bool:
        """Whether a class's key and its siblings' were all read here."""
        return (
            record.source == self.source
            and record.key in self._index
            and all(s in self._index for s in record.siblings)
        )

    def filed_ids(
        self, record: FilingRecord, marked: dict[int, int], seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`FilingTables.filed_ids` for a class this draw ``covers``: the same ids."""
        own = self._members[record.key]
        mine = np.unique(np.asarray(list(marked), dtype=np.int64))
        if len(mine):
            own = np.setdiff1d(own, mine)
        return _sample(own, MAX_FILED, seed), self._counter(record, mine, seed)

    def _order(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every photo in the order of its hash with ``seed``, and its keys (CSR: the
        columns of photo r are ``cols[start[r]:start[r + 1]]``)."""
        if seed not in self._orders:
            order = np.argsort(_hash(self._photos, seed))
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            rows = rank[self._rows]
            by_row = np.argsort(rows, kind="stable")
            start = np.zeros(len(order) + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=len(order)), out=start[1:])
            self._orders[seed] = (self._photos[order], start, self._cols[by_row])
        return self._orders[seed]

    def _counter(self, record: FilingRecord, mine: np.ndarray, seed: int) -> np.ndarray:
        """The class's counter-examples: walked in the order of the hash (see the class)."""
        photos, start, cols = self._order(seed)
        sibling = np.zeros(len(self._index), dtype=bool)
        sibling[[self._index[s] for s in record.siblings]] = True
        own = self._index[record.key]
        taken: list[np.ndarray] = []
        need, at, step = MAX_COUNTER_EXAMPLES, 0, MAX_COUNTER_EXAMPLES + 256
        while need > 0 and at < len(photos):
            end = min(len(photos), at + step)
            c = cols[start[at] : start[end]]
            row = np.repeat(np.arange(end - at), np.diff(start[at : end + 1]))
            under_sibling = np.bincount(row, weights=sibling[c], minlength=end - at) > 0
            under_own = np.bincount(row, weights=c == own, minlength=end - at) > 0
            got = photos[at:end][under_sibling & ~under_own]
            if len(mine):
                got = got[~np.isin(got, mine)]
            taken.append(got[:need])
            need -= len(taken[-1])
            at, step = end, 2 * step
        return np.sort(np.concatenate([np.zeros(0, np.int64), *taken]))


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c - 1 for each c of ``counts``, one after another."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def _nodes(path: str) -> list[str]:
    """A keyword path's nodes from the top down to itself (``A|B|C``: ``A``, ``A|B``,
    ``A|B|C``)."""
    parts = path.split(SEP)
    return [SEP.join(parts[:k]) for k in range(1, len(parts) + 1)]


def folder_key(root: str, relative: str) -> str:
    """The key of the folder ``relative`` (``/``-separated) under ``root``."""
    return os.path.join(os.path.abspath(root), *relative.split("/")) if relative else root
