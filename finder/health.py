"""A library's health: what it holds (``status``), what is wrong with it (``check``) and
putting it right (``repair``; see :mod:`finder.store.backup`)."""

from __future__ import annotations

from typing import Any

from finder.embed.registry import describe as describe_backbone
from finder.embed.registry import identity_key as _backbone_key
from finder.errors import (
    LibraryDamaged,
    LibraryError,
)
from finder.learn.head import Head
from finder.store import backup as backups
from finder.store import check as checks
from finder.store import repair as repairs
from finder.store import teaching
from finder.store.catalog import FAILED, OK, PENDING


class Health:
    """``status``, ``failures``, ``check`` and ``repair`` of a :class:`~finder.library.Library`
    (a part of it: uses its catalog, reader and store)."""

    # -- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counts, backbone, failures and the search index, without opening the vectors."""
        if not self.exists:
            return {
                "library": str(self.dir),
                "images": 0,
                "failed": 0,
                "pending": 0,
                "backbone": None,
                "backbone_info": None,
                "classes": 0,
                "class_names": [],
                "index": None,
                "with_date": 0,
                "with_file_date": 0,
                "with_position": 0,
            }
        cat = self.reader
        problems = checks.catalog_problems(cat, quick=True)
        if problems:
            raise LibraryDamaged(
                f"the catalog {cat.path} is damaged ({problems[0].what}); run `finder repair`"
            )
        info = cat.get_meta("backbone")
        if info and self._store is None:
            from finder.store.vectors import VectorStore

            if VectorStore.inspect(self.dir / "vectors", int(info["dim"])):
                self.store  # noqa: B018 - opening repairs: images that lost their vector go pending
                cat = self.reader
        counts = cat.counts()
        if info:  # a record from before precisions were recorded means float32
            info = {**info, "precision": info.get("precision") or "float32"}
        names = cat.class_names()
        return {
            "library": str(self.dir),
            "images": counts[OK],
            "failed": counts[FAILED],
            "pending": counts[PENDING],
            "backbone": describe_backbone(info) if info else None,
            "backbone_info": info,
            "classes": len(names),
            "class_names": names,
            "index": cat.get_meta("index_name"),
            **cat.fact_counts(),  # with_date (EXIF), with_file_date, with_position
        }

    def failures(self) -> list[tuple[str, str]]:
        return self.reader.failed() if self.exists else []

    # -- check and repair -----------------------------------------------------------------
    def check(self) -> list[checks.Problem]:
        """Every problem found in the library's files, one line each (none: all is well):
        SQLite's integrity check and the meta, vectors against ids against the catalog, and
        learned heads against the backbone. Reads only; takes no lock."""
        if not self.exists:
            raise LibraryError(f"there is no library at {self.dir}")
        try:
            cat = self.reader
            problems = checks.catalog_problems(cat)
            info = cat.get_meta("backbone")
        except LibraryDamaged as e:
            found = backups.file_problems(self.dir / "catalog.db") or [getattr(e, "detail", e)]
            return [checks.Problem("catalog", str(line)) for line in found]
        if problems:
            return problems
        journal = teaching.journal_of(self.dir)
        problems += [checks.Problem("teaching", p) for p in teaching.journal_problems(cat, journal)]
        if not info:
            return problems
        try:
            store = self.read_store
            problems += checks.vector_problems(cat, store, settled=not cat.get_meta("dirty"))
        except LibraryError as e:
            problems.append(checks.Problem("vectors", str(e)))
        key, dim = _backbone_key(info), int(info["dim"])
        problems += checks.class_problems(cat, key, dim, lambda d: Head.from_dict(d).w)
        return problems

    def repair(self) -> backups.RepairReport:
        """Bring a damaged library back: the catalog from its newest good backup plus what can
        still be read from it, then reconciled with the vectors (garbage vectors dropped, ok
        images without a vector back to pending), so that the next index run re-embeds only
        what was really lost. Takes the writer's lock."""
        if not self.exists:
            raise LibraryError(f"there is no library at {self.dir}")
        self.close()
        self._acquire()
        report, self._store = repairs.repair_library(
            self.dir,
            catalog=lambda: self.catalog,
            open_store=lambda info: self._open_store(info, False),
            settle=self._settle,
        )
        return report
