"""The strips each class offered (a part of :class:`~finder.store.catalog.Catalog`): every
photo of a strip with finder's guess on it and, for a photo drawn at random, its chance of being
drawn (None for a chosen one). The estimate of how good an answer is
(:mod:`finder.learn.estimate`) needs to know, for each mark, whether a strip offered it as a
random draw, with what chance, and how many strips came before it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Offer:
    """A photo a strip of a class offered: ``strip`` its number (from 0), ``chance`` its
    chance of being drawn (None: chosen, not drawn), ``guess`` finder's verdict then,
    ``offered`` when (seconds since the epoch)."""

    image_id: int
    strip: int
    chance: float | None
    guess: bool
    offered: float

    @property
    def random(self) -> bool:
        return self.chance is not None


class StripTables:
    """The ``strips`` table (schema 9)."""

    def add_strip(
        self,
        name: str,
        rows: Sequence[tuple[int, float | None, bool]],
        at: float | None = None,
    ) -> int:
        """Record a strip of class ``name``: ``rows`` (image id, chance or None, guess) in the
        order shown. Returns its number (one past the class's last strip)."""
        at = time.time() if at is None else float(at)
        with self.transaction():
            last = self.db.execute(
                "SELECT MAX(strip) FROM strips WHERE class_name = ?", [name]
            ).fetchone()[0]
            number = 0 if last is None else int(last) + 1
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO strips(class_name, strip, image_id, chance, guess,"
                " offered) VALUES (?, ?, ?, ?, ?, ?)",
                [(name, number, int(i), c, int(bool(g)), at) for i, c, g in rows],
            )
        return number

    def strip_offers(self, name: str, strip: int | None = None) -> list[Offer]:
        """The offers of class ``name`` (of its strip ``strip`` only, when given), by strip
        then as shown."""
        sql = "SELECT image_id, strip, chance, guess, offered FROM strips WHERE class_name = ?"
        args: list = [name]
        if strip is not None:
            sql += " AND strip = ?"
            args.append(int(strip))
        rows = self.db.execute(sql + " ORDER BY strip, rowid", args)
        return [Offer(int(i), int(s), c, bool(g), float(t)) for i, s, c, g, t in rows]

    def last_strip(self, name: str) -> int | None:
        """The number of class ``name``'s last strip (None: none offered yet)."""
        last = self.db.execute(
            "SELECT MAX(strip) FROM strips WHERE class_name = ?", [name]
        ).fetchone()[0]
        return None if last is None else int(last)

    def skip(self, name: str, image_ids: Sequence[int], skipped: bool = True) -> None:
        """Photos of class ``name``'s strips skipped ("not sure": never offered again), or no
        longer (``skipped`` False: a strip taken back)."""
        at = time.time() if skipped else None
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE strips SET skipped = ? WHERE class_name = ? AND image_id = ?",
                [(at, name, int(i)) for i in image_ids],
            )

    def skipped(self, name: str) -> set[int]:
        """The photos skipped in class ``name``'s strips."""
        rows = self.db.execute(
            "SELECT DISTINCT image_id FROM strips WHERE class_name = ? AND skipped IS NOT NULL",
            [name],
        )
        return {int(r[0]) for r in rows}
