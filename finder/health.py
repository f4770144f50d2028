"""A library's health: what it holds (``status``), what is wrong with it (``check``) and
putting it right (``repair``; see :mod:`finder.store.repair`)."""

from __future__ import annotations

from typing import Any

from finder import roots
from finder.embed.identity import describe as describe_backbone
from finder.embed.identity import identity_key as _backbone_key
from finder.errors import LibraryDamaged, LibraryError
from finder.folder import Folder
from finder.learn.head import Head
from finder.store import backup as backups
from finder.store import check as checks
from finder.store import repair as repairs
from finder.store import teaching
from finder.store.catalog import FAILED, OK, PENDING
from finder.store.thumbs import ThumbCache


class Health:
    """``status``, ``failures``, ``check`` and ``repair`` of the library in ``folder``."""

    def __init__(self, folder: Folder, thumbs: ThumbCache) -> None:
        self.folder = folder
        self.thumbs = thumbs  # the page's thumbnails: a repair drops those of no image now

    # -- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counts, backbone, failures and the search index, without opening the vectors."""
        folder = self.folder
        if not folder.exists:
            return {
                "library": str(folder.dir),
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
                "videos": 0,
                "frames": 0,
                "roots": [],
                "offline_roots": [],
                "offline": 0,
                "with_keywords": 0,
                "keywords": 0,
            }
        cat = folder.open_catalog()
        problems = checks.catalog_problems(cat, quick=True)
        if problems:
            raise LibraryDamaged(
                f"the catalog {cat.path} is damaged ({problems[0].what}); run `finder repair`"
            )
        info = cat.get_meta("backbone")
        if info and not folder.vectors_open:
            from finder.store.vectors import VectorStore

            if VectorStore.inspect(folder.dir / "vectors", int(info["dim"])):
                folder.open_vectors_and_repair()  # images that lost their vector go pending
                cat = folder.open_catalog()
        counts = cat.counts()
        if info:  # a record from before precisions were recorded means float32
            info = {**info, "precision": info.get("precision") or "float32"}
        names = cat.class_names()
        return {
            "library": str(folder.dir),
            "images": counts[OK],
            "failed": counts[FAILED],
            "pending": counts[PENDING],
            "backbone": describe_backbone(info) if info else None,
            "backbone_info": info,
            "classes": len(names),
            "class_names": names,
            "index": cat.get_meta("index_name"),
            **cat.fact_counts(),  # with_date (EXIF), with_file_date, with_position
            **cat.video_counts(),  # videos (among images), frames (their sampled frames)
            **roots.status(cat),  # roots, offline_roots, offline (finder.roots)
        }

    def offline_roots(self) -> dict[str, Any]:
        """``offline_roots`` (roots, or disks mounted in one, offline now) and ``offline`` (the
        photos on them, kept): what ``status`` says of them, without the rest."""
        if not self.folder.exists:
            return {"offline_roots": [], "offline": 0}
        found = roots.status(self.folder.open_catalog())
        return {"offline_roots": found["offline_roots"], "offline": found["offline"]}

    def failures(self) -> list[tuple[str, str]]:
        return self.folder.open_catalog().failed() if self.folder.exists else []

    # -- check and repair -----------------------------------------------------------------
    def check(self) -> list[checks.Problem]:
        """Every problem found in the library's files, one line each (none: all is well):
        SQLite's integrity check and the meta, vectors against ids against the catalog, and
        learned heads against the backbone. Reads only; takes no lock."""
        folder = self.folder
        if not folder.exists:
            raise LibraryError(f"there is no library at {folder.dir}")
        try:
            cat = folder.open_catalog()
            problems = checks.catalog_problems(cat)
            info = cat.get_meta("backbone")
        except LibraryDamaged as e:
            found = backups.file_problems(folder.dir / "catalog.db") or [getattr(e, "detail", e)]
            return [checks.Problem("catalog", str(line)) for line in found]
        if problems:
            return problems
        journal = teaching.journal_of(folder.dir)
        problems += [checks.Problem("teaching", p) for p in teaching.journal_problems(cat, journal)]
        if not info:
            return problems
        try:
            store = folder.open_vectors()
            settled = not cat.get_meta("dirty")
            problems += checks.vector_problems(cat, store, settled=settled)
            problems += checks.graph_problems(folder.dir, store, settled=settled)
        except LibraryError as e:
            problems.append(checks.Problem("vectors", str(e)))
        key, dim = _backbone_key(info), int(info["dim"])
        problems += checks.class_problems(cat, key, dim, lambda d: Head.from_dict(d).w)
        return problems

    def repair(self) -> backups.RepairReport:
        """Bring a damaged library back from every record it keeps (see
        :mod:`finder.store.repair`): the catalog from its newest good backup plus what can still
        be read from it (or, with neither, anew from the image map, a walk of the roots and the
        teaching journal), vectors failing their checksum dropped, the teaching journal replayed
        onto the catalog, then catalog and vectors reconciled (ok images without a vector back
        to pending), so that the next index run re-embeds only what was really lost. Takes the
        writer's lock."""
        folder = self.folder
        if not folder.exists:
            raise LibraryError(f"there is no library at {folder.dir}")
        folder.close()
        folder.lock()
        report, _ = repairs.repair_library(
            folder.dir,
            catalog=folder.open_catalog_for_writing,
            open_store=lambda info: folder.open_vectors_for_writing(),
            settle=folder.settle,
        )
        catalog = folder.open_catalog_for_writing()  # what it holds now names the thumbnails
        report.thumbnails_dropped = self.thumbs.sweep(catalog.ok_rows, catalog.frame_stamps)
        return report
