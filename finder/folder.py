"""A library's folder and the files it holds open: the catalog, the vectors, the writer's lock.

Every part of :class:`~finder.library.Library` is handed one :class:`Folder` and opens what it
needs through it, by a method that says what it does: ``open_catalog`` (read-only unless the
catalog is open for writing), ``open_catalog_for_writing``, ``open_vectors``,
``open_vectors_for_writing`` (with the lock), ``lock``/``try_lock``, ``repair_if_dirty``. Nothing
opens, locks or repairs behind a property. The folder also holds the teaching journal
(``journal``, a :class:`~finder.store.teaching.Recorder`): the parts that change what a class was
taught, or index roots, record each change into it inside the catalog transaction that makes it.

Crash safety: an index run sets ``meta.dirty`` first and clears it last. Vectors are made
durable before the catalog marks their images ``ok``. A writer that opens a dirty library
repairs it (``repair_if_dirty``): vectors without an ``ok`` (or ``pending``: a changed photo
keeps its old vector until the new one replaces it) image are dropped, ``ok`` images without a
vector go back to ``pending`` and are embedded by the next index run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock, Timeout

from finder.errors import LibraryDamaged, LibraryError, LibraryLocked, UsageError
from finder.store import graph, owner
from finder.store import repair as repairs
from finder.store.catalog import OK, PENDING, Catalog, CatalogTooOld
from finder.store.journal import JOURNAL
from finder.store.teaching import Recorder

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore


LIBRARY_ENTRIES = (
    "catalog.db",  # and its -wal, -shm, .damaged-TIME
    "vectors",  # and vectors.damaged-TIME
    "backups",
    "thumbs",
    "metric.npz",
    "progress.json",
    "lock",
    "owner.json",  # who holds the lock (store/owner.py)
    "teaching.log",
    "images.npz",
)
"""What a library folder holds (the names its files start with). A folder holding anything else
and none of these is not a library: finder neither reads it as one nor writes into it."""


def check_library_folder(directory: Path) -> None:
    """A one-line ``UsageError`` unless ``directory`` may be a library: a folder holding
    finder's files (even damaged: ``finder repair`` works there), an empty folder (hidden files
    such as ``.DS_Store`` aside) or nothing yet (a new library is made there by ``index``);
    its name UTF-8."""
    try:
        str(directory).encode("utf-8")
    except UnicodeEncodeError:  # SQLite opens files by UTF-8 names only
        shown = os.fsencode(directory).decode("utf-8", "backslashreplace")
        raise UsageError(
            f"{shown}: a library folder's name must be UTF-8 (SQLite cannot open the catalog "
            "in another); choose another folder"
        ) from None
    if (directory / "catalog.db").is_file() or not os.path.lexists(directory):
        return
    if not directory.is_dir():
        what = "a file" if directory.is_file() else "not a folder"
        raise UsageError(f"{directory} is not a finder library: it is {what}")
    try:
        names = [e.name for e in os.scandir(directory) if not e.name.startswith(".")]
    except OSError:
        return  # an unreadable folder: opening its catalog says why
    ours = any(n == e or n.startswith((e + ".", e + "-")) for n in names for e in LIBRARY_ENTRIES)
    if names and not ours:
        raise UsageError(
            f"{directory} is not a finder library: it holds other files and no catalog.db "
            "(a new library is made in an empty or new folder)"
        )


class Folder:
    """The library folder ``directory``: what is open in it, and the writer's lock.

    ``shared`` (``Library.open_shared``, for ``finder serve``): never take the lock, so that
    ``finder index`` can run beside; the vectors are read-only (closed when another process
    changed them: ``close_vectors_if_changed``), the catalog is written (classes and their
    examples) as ``learn`` from another process would. ``memory_budget`` (bytes) is recorded in
    the catalog when it is opened for writing. ``messages`` collects what a repair said."""

    def __init__(
        self, directory: Path, *, memory_budget: int | None = None, shared: bool = False
    ) -> None:
        check_library_folder(directory)
        self.dir = directory
        self.shared = shared
        self.memory_budget = memory_budget
        self.messages: list[str] = []
        self.journal = Recorder(directory / JOURNAL)  # every teaching change, recorded
        self._catalog: Catalog | None = None  # read-only, or open for writing
        self._store: VectorStore | None = None  # read-only unless the lock is held
        self._lock: FileLock | None = None  # the writer's lock, once taken
        self._vectors_seen: tuple | None = None  # the vector files when last looked at (shared)
        # read-only vectors hold at least every image embedded up to this moment (catalog time,
        # read just before they were opened; see ``vectors_cover``)
        self._vectors_cover: float | None = None

    @property
    def exists(self) -> bool:
        """Whether a library is here: its catalog, or what remains of a lost one (its vectors,
        teaching journal or backups; opening its catalog then says to repair it)."""
        return (self.dir / "catalog.db").exists() or repairs.lost_catalog(self.dir) is not None

    @property
    def locked(self) -> bool:
        """Whether this process holds the writer's lock."""
        return self._lock is not None

    @property
    def vectors_open(self) -> bool:
        """Whether the vector store is open (read-only or for writing)."""
        return self._store is not None

    def make_dir(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"the library path {self.dir} is not a folder")
        self.dir.mkdir(parents=True, exist_ok=True)

    # -- the catalog ----------------------------------------------------------------------
    def open_catalog(self) -> Catalog:
        """The catalog for reading: the open one, else opened read-only (nothing is written,
        no lock is taken). Raises LibraryError when there is no library yet."""
        if self._catalog is None:
            if not self.exists:
                raise LibraryError(
                    f"there is no library at {self.dir} yet; run `finder index FOLDER` first"
                )
            if lost := repairs.lost_catalog(self.dir):
                raise LibraryDamaged(lost)
            try:
                self._catalog = Catalog(self.dir / "catalog.db", read_only=True)
            except CatalogTooOld:  # an older finder's library: migrate it once, if writable
                Catalog(self.dir / "catalog.db").close()
                self._catalog = Catalog(self.dir / "catalog.db", read_only=True)
        return self._catalog

    def open_catalog_for_writing(self) -> Catalog:
        """The catalog open for writing (a read-only one is closed first; the library folder
        is made when new). Takes no lock: classes are written beside an index run."""
        if self._catalog is not None and self._catalog.read_only:
            self._catalog.close()
            self._catalog = None
        if self._catalog is None:
            self.make_dir()
            if lost := repairs.lost_catalog(self.dir):
                raise LibraryDamaged(lost)
            self._catalog = Catalog(self.dir / "catalog.db")
            if self.memory_budget is not None:
                self._catalog.set_meta("memory_budget", int(self.memory_budget))
        return self._catalog

    def recorded_backbone(self) -> dict | None:
        """The backbone record of the library's vectors (None: no library, or none indexed)."""
        return self.open_catalog().get_meta("backbone") if self.exists else None

    def require_indexed(self) -> dict:
        """The backbone record, or LibraryError when nothing is indexed yet."""
        info = self.recorded_backbone()
        # pending images may hold their old vector (changed photos, or an interrupted run)
        if not info or not (
            self.open_catalog().has_status(OK)
            or (self.open_catalog().has_status(PENDING) and len(self.open_vectors()))
        ):
            raise LibraryError(
                f"the library {self.dir} has no indexed images yet; run `finder index FOLDER` first"
            )
        return info

    # -- the lock -------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the writer's lock (kept until ``close``); LibraryLocked when another process
        holds it or the library is open shared."""
        if self.shared:
            raise LibraryLocked(
                f"the library {self.dir} is open shared (finder serve): not for writing"
            )
        if self._lock is None:
            self.make_dir()
            lock = FileLock(str(self.dir / "lock"), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                holder = owner.read(self.dir)
                who = f" ({holder['command']}, pid {holder['pid']})" if holder else ""
                raise LibraryLocked(
                    f"another finder{who} is working on the library {self.dir}; "
                    "wait for it to finish and try again",
                    owner=holder,
                ) from None
            self._lock = lock
            owner.write(self.dir)

    def note_following(self, roots: Sequence[str], offline: Sequence[str] = ()) -> None:
        """With the lock held: say in the owner record that this process follows ``roots`` (a
        watch; ``offline``: the parts of them offline now), for the message another writer
        gets and for the pages that show the library."""
        if self._lock is not None:
            owner.write(self.dir, following=roots, offline=offline)

    def try_lock(self) -> bool:
        """Take the writer's lock when it can be had; False while another process writes, when
        the library is open shared, or when the folder is read-only."""
        try:
            self.lock()
        except (LibraryLocked, PermissionError):
            return False
        return True

    # -- the vectors ----------------------------------------------------------------------
    def open_vectors(self) -> VectorStore:
        """The vector store for reading: the open one, else opened read-only without the lock
        (what the last index run committed; a dirty library is not repaired here)."""
        if self._store is None:
            self._store = self._open_store(read_only=True)
        return self._store

    def open_vectors_for_writing(self) -> VectorStore:
        """The vector store open for writing, under the writer's lock (taken now when not held:
        LibraryLocked when another process has it). Read-only vectors open before are closed
        and opened again. A dirty library is not repaired here: see ``repair_if_dirty``."""
        self.lock()
        if self._store is not None and self._store.read_only:
            self._store.close()
            self._store = None
        if self._store is None:
            self._store = self._open_store(read_only=False)
        return self._store

    def open_vectors_and_repair(self) -> VectorStore:
        """The vectors as a command that may write sees them: with the writer's lock when it is
        free (taken now), and then a dirty library repaired (``repair_if_dirty``); while another
        process writes (or the folder is read-only), read-only: what that run has committed."""
        if self._store is not None and (self._lock is not None or not self.try_lock()):
            return self._store  # open for writing already, or another process writes
        if self._store is None and not (self._lock is not None or self.try_lock()):
            return self.open_vectors()
        self.open_vectors_for_writing()
        return self.repair_if_dirty()

    def _open_store(self, *, read_only: bool) -> VectorStore:
        from finder.store.vectors import VectorStore

        info = self.recorded_backbone()
        if not info:
            raise LibraryError(f"the library {self.dir} has no vectors yet")
        # read before the files are: vectors are stored before the catalog says ok
        self._vectors_cover = self.open_catalog().last_ok_update() if read_only else None
        return VectorStore(
            self.dir / "vectors",
            int(info["dim"]),
            memory_budget=self.open_catalog().get_meta("memory_budget"),
            on_message=self.messages.append,
            read_only=read_only,
        )

    def vectors_cover(self) -> float | None:
        """Read-only vectors open: the moment (the catalog's ``updated`` time) up to which they
        hold every embedded image; later ones come with the next opening (``refresh``). None:
        no read-only vectors open (the next opening sees all, and a writer's hold all)."""
        if self._store is None or not self._store.read_only:
            return None
        return self._vectors_cover

    def close_vectors_if_changed(self) -> bool:
        """For a shared library: close the vectors when another process changed their files
        since they were opened, so that the next ``open_vectors`` sees what it indexed.
        Returns whether they were closed."""
        folder = self.dir / "vectors"
        try:
            stats = ((e.name, e.stat()) for e in os.scandir(folder))
            seen = tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))
        except OSError:
            seen = ()
        if not self.shared or seen == self._vectors_seen:
            return False
        self._vectors_seen = seen
        if self._store is not None:
            self._store.close()
            self._store = None
            return True
        return False

    # -- repair ---------------------------------------------------------------------------
    def repair_if_dirty(self) -> VectorStore:
        """With the vectors open for writing: when an interrupted run left the library dirty,
        or the vectors were found damaged at open, settle catalog and vectors and say what was
        repaired (in ``messages``). Returns the store."""
        store = self._store
        assert store is not None and not store.read_only, "open_vectors_for_writing first"
        catalog = self.open_catalog_for_writing()
        if not (catalog.get_meta("dirty", False) or store.damage):
            return store
        dropped, missing = self.settle(store)
        if store.damage:
            self.messages.append(
                f"the stored vectors were damaged ({store.damage}); "
                f"{missing} images lost theirs and will be embedded again by `finder index`"
            )
        elif dropped or missing:
            self.messages.append(
                f"repaired an interrupted run: dropped {dropped} stray vectors, "
                f"{missing} images will be embedded again"
            )
        return store

    def settle(self, store: VectorStore) -> tuple[int, int]:
        """Make catalog and vectors agree (vectors of images not ok are dropped, ok images
        without a vector, and videos missing a frame's, go back to pending), save the index and
        clear ``meta.dirty`` (the neighbour graph brought up to date). Returns (vectors
        dropped, images to embed again)."""
        catalog = self.open_catalog_for_writing()
        holders = catalog.vector_ids()  # ok photos, videos' frames (finder.store.frames)
        dropped, missing = store.reconcile(holders.allowed)
        # a pending photo need not hold a vector; a video missing a frame goes back to pending
        again = catalog.vectors_lost(np.intersect1d(missing, holders.required).tolist())
        store.commit()
        store.save_index()
        graph.refresh(self.dir, store)  # the neighbour graph of these vectors (store/graph.py)
        catalog.set_meta("index_name", store.index_name())
        catalog.set_meta("dirty", False)
        return dropped, again

    def close(self) -> None:
        """Close what is open and release the lock."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        if self._lock is not None:
            owner.remove(self.dir)
            self._lock.release()
            self._lock = None


def library_path(directory: str | os.PathLike) -> Path:
    """``directory`` as a library folder's absolute path (``~`` expanded)."""
    return Path(directory).expanduser().absolute()


def default_library_dir() -> Path:
    """``$FINDER_LIBRARY``, else the XDG data directory (``~/.local/share/finder``)."""
    env = os.environ.get("FINDER_LIBRARY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("finder", appauthor=False))
