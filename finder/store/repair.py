"""``finder repair``: a damaged library brought back from every record it keeps.

    report, store = repair_library(directory, catalog=..., open_store=..., settle=...)

In order:

1. The catalog (:func:`finder.store.backup.repair_catalog`): the newest good backup plus what
   can still be read from the damaged file; with neither (no backups, the catalog missing or
   unreadable), a new catalog whose backbone record comes from the teaching journal.
2. The vectors: a store that cannot be opened is kept aside and started anew; vectors that fail
   their checksum or are not finite unit vectors are dropped, the raw files rewritten
   (:func:`finder.store.backup.drop_bad_vectors`).
3. Images, when the catalog's images could not be read whole: put back from the image map
   (``images.npz``: id, path, size, mtime, fingerprint after each index run), ``ok`` where the
   store holds the id's vector, else pending; then the roots the journal records are walked
   and every file not in the catalog is added as pending.
4. Teaching (:func:`finder.store.teaching.restore_teaching`): the journal's classes, examples
   and marks replayed onto the catalog, the journal rewritten as their minimal record.
5. Catalog and vectors reconciled (``settle``), a fresh backup and image map.

The next ``finder index`` embeds what is pending; ``finder check`` then finds the library clean.
When nothing at all says which backbone made the vectors (no backup, no readable catalog, no
journal), the vectors are kept aside and the library starts anew with its classes, if the
journal still holds them: ``finder index`` with the backbone options makes it whole.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from finder.errors import FinderError
from finder.ingest import crawl
from finder.ingest.crawl import FileFact
from finder.store import backup, imagemap
from finder.store.backup import BACKUP_DIR, RepairReport
from finder.store.catalog import Catalog, encode_path
from finder.store.journal import JOURNAL, Journal, Root
from finder.store.teaching import restore_teaching

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore

CATALOG = "catalog.db"
VECTORS = "vectors"


def lost_catalog(directory: Path) -> str | None:
    """Why the library in ``directory`` is damaged when its catalog file is missing but other
    records of it are not (the vectors, the teaching journal, backups); None otherwise."""
    directory = Path(directory)
    if (directory / CATALOG).exists():
        return None
    kept = [
        name
        for name, path in (
            ("vectors", directory / VECTORS / "manifest.json"),
            ("teaching journal", directory / JOURNAL),
            ("backups", directory / BACKUP_DIR),
        )
        if path.exists()
    ]
    if not kept:
        return None
    return (
        f"the catalog {directory / CATALOG} is missing (its {', '.join(kept)} are there); "
        "run `finder repair`"
    )


def after_index(catalog: Catalog, directory: Path) -> None:
    """What a good index run leaves besides the catalog: a backup and the image map."""
    backup.make_backup(catalog, Path(directory) / BACKUP_DIR)
    imagemap.write(catalog, Path(directory))


def repair_library(
    directory: Path,
    *,
    catalog: Callable[[], Catalog],
    open_store: Callable[[dict], VectorStore],
    settle: Callable[[VectorStore], tuple[int, int]],
) -> tuple[RepairReport, VectorStore | None]:
    """Repair the library in ``directory`` (see the module docstring), with the caller's
    lock held. ``catalog()`` opens the (repaired) catalog for writing, ``open_store(backbone)``
    the vector store; ``settle(store)`` reconciles them and returns (vectors dropped, images
    to embed again). Returns the report and the open store (None when the library starts
    anew)."""
    directory = Path(directory)
    journal = Journal(directory / JOURNAL)
    replay = journal.replay()
    roots = list(replay.state.roots.values())
    fallback = {"backbone": replay.state.backbone, "memory_budget": replay.state.memory_budget}
    report = backup.repair_catalog(directory / CATALOG, directory / BACKUP_DIR, fallback)
    report.roots = [r.path for r in roots]
    cat = catalog()
    info = cat.get_meta("backbone")
    store = None
    top = 0
    if info is None:
        report.started_anew = _set_aside(directory / VECTORS)
    else:
        store = backup.open_store(lambda: open_store(info), directory / VECTORS, report)
        top = backup.drop_bad_vectors(cat, store, report)
        if "images" in report.unreadable:
            restore_images(cat, store, directory, roots, report)
    trusted = not report.problems  # the catalog was sound: what it holds was committed
    report.teaching = restore_teaching(cat, journal, catalog_trusted=trusted).to_dict()
    if store is None:
        cat.set_meta("dirty", False)
        return report, None
    dropped, _ = settle(store)
    cat.set_meta("next_id", max(cat.next_id(), top + 1))
    after_index(cat, directory)
    return backup.finish_report(cat, report, dropped), store


def _set_aside(vectors: Path) -> str:
    """Keep the vectors aside (nothing says which backbone made them); the reason."""
    if vectors.exists():
        kept = vectors.with_name(f"{vectors.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(vectors, kept)
        where = f"the vectors are kept as {kept.name}"
    else:
        where = "there are no vectors"
    return (
        f"no backup, catalog or teaching journal says which backbone made the vectors ({where}); "
        "index your folders again with the backbone options you used"
    )


def restore_images(
    catalog: Catalog,
    store: VectorStore,
    directory: Path,
    roots: Iterable[Root],
    report: RepairReport,
) -> None:
    """Put back the images the catalog lost: those of the image map that it has neither by id
    nor by path (``ok`` when the store holds the id's vector, else pending), then every file
    under the recorded roots it does not have by path (pending)."""
    db = catalog.db
    have_ids = {r[0] for r in db.execute("SELECT id FROM images")}
    have_paths = {bytes(r[0]) for r in db.execute("SELECT path FROM images")}
    held = set(np.asarray(store.ids(), dtype=np.int64).tolist())
    entries = imagemap.read(directory) or []
    rows = []
    now = time.time()
    for e in entries:
        raw = encode_path(e.path)
        if e.id in have_ids or raw in have_paths:
            continue
        ok = e.ok and e.id in held
        status = "ok" if ok else "pending"
        rows.append((e.id, raw, e.size, e.mtime_ns, e.fingerprint if ok else None, status, now))
        have_ids.add(e.id)
        have_paths.add(raw)
    with catalog.transaction() as conn:
        conn.executemany(
            "INSERT INTO images(id, path, size, mtime_ns, fingerprint, status, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    report.images_restored = len(rows)
    found: list[FileFact] = []
    for root in roots:
        if not os.path.exists(root.path):
            continue
        try:
            for fact in crawl.walk([root.path], hidden=root.hidden, exclude=root.exclude):
                raw = encode_path(fact.path)
                if raw not in have_paths:
                    found.append(fact)
                    have_paths.add(raw)
        except (OSError, FinderError):
            continue
    if found:
        catalog.insert_pending(found)
    report.images_found = len(found)
