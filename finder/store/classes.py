"""The catalog's classes and their examples (a part of :class:`~finder.store.catalog.Catalog`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from finder.store.rows import ExampleRow, decode_path, encode_path
from finder.store.sqlite import damaged


class ClassTables:
    """Learned classes (the head JSON, the backbone it was learned with) and the photos
    marked for them (label 1 ✓, 0 ✗, with their vectors, so refining never re-embeds)."""

    # -- classes --------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM classes ORDER BY name")]

    def get_class(self, name: str) -> dict | None:
        """The class record; ``threshold`` (the cut-off) is read from the head's JSON, where
        it is stored."""
        row = self.db.execute(
            "SELECT name, head, backbone, n_pos, n_neg, created, updated "
            "FROM classes WHERE name = ?",
            [name],
        ).fetchone()
        if row is None:
            return None
        keys = ["name", "head", "backbone", "n_pos", "n_neg", "created", "updated"]
        out = dict(zip(keys, row, strict=True))
        filed = self.db.execute("SELECT source FROM filing WHERE class_name = ?", [name]).fetchone()
        out["source"] = filed[0] if filed else None  # "keyword", "folder", or taught by hand
        try:
            out["head"] = json.loads(out["head"])
            out["threshold"] = float(out["head"].get("threshold", 0.5))
        except (TypeError, ValueError, AttributeError):
            raise damaged(self.path, f"the head of class {name!r} is unreadable") from None
        return out

    def classes(self) -> list[dict]:
        return [c for name in self.class_names() if (c := self.get_class(name)) is not None]

    def save_class(self, name: str, head: dict, backbone: str, n_pos: int, n_neg: int) -> None:
        """Insert or replace class ``name``; ``head`` (JSON-able) carries its cut-off."""
        now = time.time()
        self.db.execute(
            "INSERT INTO classes(name, head, backbone, n_pos, n_neg, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET head = excluded.head,"
            " backbone = excluded.backbone, n_pos = excluded.n_pos,"
            " n_neg = excluded.n_neg, updated = excluded.updated",
            [name, json.dumps(head), backbone, n_pos, n_neg, now, now],
        )

    def add_examples(
        self,
        name: str,
        rows: Iterable[tuple[str, int, bytes] | tuple[str, int, bytes, str | None]],
    ) -> None:
        """Add or relabel examples (path, label, vector bytes[, origin]; without one: not
        known) of class ``name``."""
        now = time.time()
        self.db.conn.executemany(
            "INSERT INTO examples(class_name, path, label, vector, added, origin) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(class_name, path) DO UPDATE SET "
            "label = excluded.label, vector = excluded.vector, added = excluded.added, "
            "origin = excluded.origin",
            [
                (name, encode_path(r[0]), int(r[1]), r[2], now, r[3] if len(r) > 3 else None)
                for r in rows
            ],
        )

    def examples(self, name: str) -> list[ExampleRow]:
        return [
            ExampleRow(name, decode_path(p), label, vec, origin)
            for p, label, vec, origin in self.db.execute(
                "SELECT path, label, vector, origin FROM examples WHERE class_name = ? "
                "ORDER BY label DESC, path",
                [name],
            )
        ]

    def example_rows(self, name: str) -> list[tuple[str, int, bytes, float, str | None]]:
        """The examples of class ``name`` as (path, label, vector bytes, added, origin), in the
        order they were first given."""
        return [
            (decode_path(p), int(label), vec, float(added or 0.0), origin)
            for p, label, vec, added, origin in self.db.execute(
                "SELECT path, label, vector, added, origin FROM examples WHERE class_name = ? "
                "ORDER BY id",
                [name],
            )
        ]

    def put_class(
        self,
        record: dict,
        examples: Iterable[tuple[str, int, bytes, float, str | None]],
    ) -> None:
        """Set class ``record["name"]`` exactly as given (head, backbone, counts, times) with
        exactly these examples (path, label, vector bytes, added, origin), in one transaction:
        what the teaching journal recorded, put back (``finder.store.teaching``)."""
        name = record["name"]
        with self.transaction():
            self.db.execute("DELETE FROM examples WHERE class_name = ?", [name])
            self.db.execute(
                "INSERT OR REPLACE INTO classes(name, head, backbone, n_pos, n_neg, created, "
                "updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _record_values(record),
            )
            self.db.conn.executemany(
                "INSERT INTO examples(class_name, path, label, vector, added, origin) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(name, encode_path(p), int(lab), vec, t, o) for p, lab, vec, t, o in examples],
            )

    def forget_class(self, name: str, at: float | None = None) -> None:
        """Move class ``name`` and its examples out of the live tables into ``forgotten``
        (kept until ``purge_forgotten``), stamped ``at`` (now by default)."""
        at = time.time() if at is None else float(at)
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO forgotten(name, head, backbone, n_pos, n_neg, created, updated,"
                " forgotten_at) SELECT name, head, backbone, n_pos, n_neg, created, updated, ?"
                " FROM classes WHERE name = ?",
                [at, name],
            )
            if cur.rowcount:
                self.db.execute(
                    "INSERT INTO forgotten_examples(forgotten_id, path, label, vector, added,"
                    " origin) SELECT ?, path, label, vector, added, origin FROM examples"
                    " WHERE class_name = ?"
                    " ORDER BY id",
                    [cur.lastrowid, name],
                )
            self.db.execute("DELETE FROM examples WHERE class_name = ?", [name])
            self.db.execute("DELETE FROM classes WHERE name = ?", [name])
            self.db.execute("DELETE FROM filing WHERE class_name = ?", [name])
            self.db.execute("DELETE FROM sidecar_writes WHERE class_name = ?", [name])
            self.db.execute("DELETE FROM strips WHERE class_name = ?", [name])  # offers end

    def forgotten_classes(self, since: float = 0.0) -> list[dict]:
        """The forgotten classes forgotten at ``since`` or later, newest first: their record
        (as ``get_class`` gives it, without the head) with ``forgotten_at`` and ``id``."""
        keys = ["id", "name", "backbone", "n_pos", "n_neg", "created", "updated", "forgotten_at"]
        rows = self.db.execute(
            f"SELECT {', '.join(keys)} FROM forgotten WHERE forgotten_at >= ? "
            "ORDER BY forgotten_at DESC, id DESC",
            [float(since)],
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def restore_class(self, name: str, since: float = 0.0, at: float | None = None) -> bool:
        """Bring back the newest forgotten class ``name`` (forgotten at ``since`` or later; the
        one forgotten at ``at`` when given) into the live tables, where no class may hold its
        name. Returns whether there was one."""
        sql = "SELECT id FROM forgotten WHERE name = ? AND forgotten_at >= ?"
        params: list = [name, float(since)]
        if at is not None:
            sql += " AND forgotten_at = ?"
            params.append(float(at))
        with self.transaction():
            row = self.db.execute(sql + " ORDER BY forgotten_at DESC, id DESC", params).fetchone()
            if row is None:
                return False
            self.db.execute(
                "INSERT INTO classes(name, head, backbone, n_pos, n_neg, created, updated)"
                " SELECT name, head, backbone, n_pos, n_neg, created, updated FROM forgotten"
                " WHERE id = ?",
                [row[0]],
            )
            self.db.execute(
                "INSERT INTO examples(class_name, path, label, vector, added, origin)"
                " SELECT ?, path, label, vector, added, origin FROM forgotten_examples"
                " WHERE forgotten_id = ? ORDER BY id",
                [name, row[0]],
            )
            self.db.execute("DELETE FROM forgotten_examples WHERE forgotten_id = ?", [row[0]])
            self.db.execute("DELETE FROM forgotten WHERE id = ?", [row[0]])
        return True

    def forgotten_entries(
        self,
    ) -> list[tuple[dict, list[tuple[str, int, bytes, float, str | None]]]]:
        """Every forgotten class, oldest first: its record (as ``get_class`` gives it, with
        ``forgotten_at``) and its examples (path, label, vector bytes, added, origin) in their
        order."""
        keys = ["id", "name", "head", "backbone", "n_pos", "n_neg", "created", "updated"]
        out = []
        rows = self.db.execute(
            f"SELECT {', '.join(keys)}, forgotten_at FROM forgotten ORDER BY forgotten_at, id"
        ).fetchall()
        for row in rows:
            record = dict(zip([*keys, "forgotten_at"], row, strict=True))
            try:
                record["head"] = json.loads(record["head"])
            except (TypeError, ValueError):
                raise damaged(
                    self.path, f"the head of forgotten class {record['name']!r} is unreadable"
                ) from None
            examples = [
                (decode_path(p), int(label), vec, float(added or 0.0), origin)
                for p, label, vec, added, origin in self.db.execute(
                    "SELECT path, label, vector, added, origin FROM forgotten_examples"
                    " WHERE forgotten_id = ? ORDER BY id",
                    [record["id"]],
                )
            ]
            out.append((record, examples))
        return out

    def put_forgotten(
        self, entries: Iterable[tuple[dict, Iterable[tuple[str, int, bytes, float, str | None]]]]
    ) -> None:
        """Make the forgotten classes exactly ``entries`` (a record as ``forgotten_entries``
        gives it, its examples), in one transaction: what the teaching journal keeps, put back
        (``finder.store.forgotten``)."""
        with self.transaction():
            self.db.execute("DELETE FROM forgotten_examples")
            self.db.execute("DELETE FROM forgotten")
            for record, examples in entries:
                cur = self.db.execute(
                    "INSERT INTO forgotten(name, head, backbone, n_pos, n_neg, created, updated,"
                    " forgotten_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [*_record_values(record), float(record["forgotten_at"])],
                )
                self.db.conn.executemany(
                    "INSERT INTO forgotten_examples(forgotten_id, path, label, vector, added,"
                    " origin) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (cur.lastrowid, encode_path(p), int(lab), vec, t, o)
                        for p, lab, vec, t, o in examples
                    ],
                )

    def purge_forgotten(self, before: float) -> int:
        """Drop the classes forgotten before ``before`` for good; returns how many."""
        with self.transaction():
            old = [
                r[0]
                for r in self.db.execute(
                    "SELECT id FROM forgotten WHERE forgotten_at < ?", [float(before)]
                )
            ]
            self.db.conn.executemany(
                "DELETE FROM forgotten_examples WHERE forgotten_id = ?", [(i,) for i in old]
            )
            self.db.conn.executemany("DELETE FROM forgotten WHERE id = ?", [(i,) for i in old])
        return len(old)

    def rename_class(self, old: str, new: str) -> None:
        """Class ``old`` is now named ``new`` (which no class may hold), its examples with it."""
        with self.transaction():
            self.db.execute(
                "UPDATE classes SET name = ?, updated = ? WHERE name = ?", [new, time.time(), old]
            )
            self.db.execute("UPDATE examples SET class_name = ? WHERE class_name = ?", [new, old])
            for table in ("filing", "sidecar_writes"):  # a filed class keeps its source
                self.db.execute(
                    f"UPDATE {table} SET class_name = ? WHERE class_name = ?", [new, old]
                )
            self.db.execute("UPDATE strips SET class_name = ? WHERE class_name = ?", [new, old])

    def example_label(self, name: str, path: str) -> int | None:
        """The label of ``path`` among the examples of class ``name`` (None: not one)."""
        row = self.db.execute(
            "SELECT label FROM examples WHERE class_name = ? AND path = ?",
            [name, encode_path(path)],
        ).fetchone()
        return None if row is None else int(row[0])

    def remove_examples(self, name: str, paths: Iterable[str]) -> None:
        """Drop examples of class ``name`` (a ✓ or ✗ taken back); commits with the caller's
        transaction when there is one."""
        self.db.conn.executemany(
            "DELETE FROM examples WHERE class_name = ? AND path = ?",
            [(name, encode_path(p)) for p in paths],
        )


def _record_values(record: dict) -> list:
    """A class record's columns as ``classes`` (and ``forgotten``) hold them: name, head JSON,
    backbone, n_pos, n_neg, created, updated."""
    return [
        record["name"],
        json.dumps(record["head"]),
        record["backbone"],
        int(record["n_pos"]),
        int(record["n_neg"]),
        float(record["created"]),
        float(record["updated"]),
    ]
