"""Follow folders as they change: the operating system's file events (through watchdog:
inotify, FSEvents, ReadDirectoryChangesW, kqueue), settled into paths worth looking at.

    settler = Settler()
    events = EventSource(settler, hidden=False, exclude=[], ignore=[library_dir])
    why = events.follow(root)     # None: followed by events; else why it must be rescanned
    settler.wait(1.0)             # until a change may have settled
    ready = settler.take()        # Ready(files, folders, renames): settled, to compare

**Settling.** A file is taken once it has stopped changing: no event for it for ``settle``
seconds (``quick`` after it was closed for writing, renamed into place, or deleted) and the
same size, modification time and type at two looks that far apart. A file still being copied
keeps sending events, or shows another size at the second look, and waits. Paths found
changed by a rescan (no events: ``note`` called by the rescan) settle the same way. A file
that appeared without a close (moved in, or into a folder too new to be watched yet) waits
the full ``settle``: longer than watchdog holds a move's source (0.5 s) before it reports it
deleted, so that a deletion that is really the other half of a move comes in first and waits
for it (``finder.changes`` holds a vanished photo back while a file of its size settles).

**Renames** the operating system reports (a file or a whole folder) are kept as hints
(``Ready.renames``): the catalog can then move the rows without reading a byte. Linked paths
(``Settler.link``: the two ends of a reported rename, or a vanished photo and a file of its
size still settling, which may be its copy) are handed out together, in the same batch.

**Events that are not enough.** A root whose watch cannot be set up (the system's limit of
watches reached, a file system without events) is told by :meth:`EventSource.follow`; a
folder created later that cannot be watched (the limit reached then), or events the kernel
dropped (its queue overflowed), put the root in :meth:`EventSource.trouble`: the caller
rescans those roots instead (``finder.watching``). Network file systems send no events for
changes made elsewhere (:func:`finder.ingest.mounts.is_network`): rescanned too.

Which paths count: photo files (``crawl.is_image_name``) and folders, under the rules of
``crawl.walk`` (hidden names, junk, ``exclude`` globs), outside the ``ignore`` folders (the
library's own, whose thumbnails are JPEGs).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from finder.ingest import crawl, files

QUICK = 0.25  # seconds without a change after a file was closed for writing, or renamed
SETTLE = 1.0  # seconds without a change after any other event (or a change seen by a rescan)

Stat = tuple[int, int, int] | None  # (size, mtime_ns, file type bits); None: nothing there


def look(path: str) -> Stat:
    """What a path is now, for telling whether it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode))


def under(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (``/a/b2`` is not below ``/a/b``)."""
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder == os.sep else folder + os.sep)


@dataclass
class Ready:
    """Settled changes: files to look at (there or gone), folders whose whole content to
    compare, and renames the operating system reported (source → destination)."""

    files: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    renames: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.files or self.folders)

    def __len__(self) -> int:
        return len(self.files) + len(self.folders)


@dataclass
class _Entry:
    seen: float  # when the last event (or change) came
    wait: float  # how long it must then stay quiet
    stat: Stat
    folder: bool
    version: int = 0


class Settler:
    """Paths that changed, until they have settled (thread-safe: events are noted from
    watchdog's thread, taken from the caller's)."""

    def __init__(
        self,
        settle: float = SETTLE,
        quick: float = QUICK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle = float(settle)
        self.quick = min(float(quick), self.settle)
        self._clock = clock
        self._cond = threading.Condition()
        self._entries: dict[str, _Entry] = {}
        self._renames: dict[str, str] = {}
        self._links: dict[str, set[str]] = {}  # paths taken together (see ``link``)

    def note(
        self, path: str, *, quick: bool = False, folder: bool = False, seen: bool = False
    ) -> None:
        """``path`` changed (a file, or with ``folder`` a folder whose content to compare).
        ``seen``: found different by a rescan, not told by an event: a path already waiting
        keeps its time unless it changed again."""
        st = None if folder else look(path)
        wait = self.quick if quick or (st is None and not folder) else self.settle
        with self._cond:
            e = self._entries.get(path)
            if e is not None and seen and e.stat == st:
                return
            if e is None:
                self._entries[path] = _Entry(self._clock(), wait, st, folder)
            else:
                e.seen, e.wait, e.stat = self._clock(), wait, st
                e.folder |= folder
                e.version += 1
            self._cond.notify_all()

    def rename(self, src: str, dst: str) -> None:
        """The operating system reported ``src`` renamed to ``dst`` (both noted too)."""
        with self._cond:
            self._renames[src] = dst
            self._link(src, [dst])

    def link(self, path: str, others: Iterable[str]) -> None:
        """Take ``path`` only in the same batch as ``others`` (the two halves of what may be a
        move: a vanished photo and a file of its size still settling)."""
        with self._cond:
            self._link(path, others)

    def _link(self, path: str, others: Iterable[str]) -> None:
        for other in others:
            if other != path:
                self._links.setdefault(path, set()).add(other)
                self._links.setdefault(other, set()).add(path)

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def unsettled(self) -> tuple[set[str], dict[int, list[str]]]:
        """The paths still settling, and those files by size (a photo moved to another disk
        is a copy and a deletion: its deletion waits for a file of its size to settle)."""
        with self._cond:
            entries = list(self._entries.items())
        sizes: dict[int, list[str]] = {}
        for p, e in entries:
            if e.stat is not None:
                sizes.setdefault(e.stat[0], []).append(p)
        return {p for p, _ in entries}, sizes

    def drop_under(self, folder: str) -> None:
        """Forget the changes under ``folder`` (a root gone offline: rescanned when back)."""
        with self._cond:
            for p in [p for p in self._entries if under(p, folder)]:
                del self._entries[p]
            for p in [p for p in self._links if under(p, folder)]:
                self._unlink(p)
            for s in [s for s, d in self._renames.items() if under(s, folder) or under(d, folder)]:
                del self._renames[s]

    def wait(self, timeout: float) -> None:
        """Return when a change may have settled (or a new one came), or after ``timeout``."""
        with self._cond:
            now = self._clock()
            due = min((e.seen + e.wait for e in self._entries.values()), default=now + timeout)
            delay = min(timeout, due - now)
            if delay > 0:
                self._cond.wait(delay)

    def take(self) -> Ready:
        """The changes that have settled, removed from those waiting."""
        now = self._clock()
        with self._cond:
            due = [(p, e, e.version) for p, e in self._entries.items() if now - e.seen >= e.wait]
        looked = [(p, e, v, None if e.folder else look(p)) for p, e, v in due]  # no lock held
        ready: dict[str, bool] = {}  # path → is a folder
        with self._cond:
            for p, e, v, st in looked:
                if self._entries.get(p) is not e or e.version != v:
                    continue  # changed again meanwhile
                if e.folder or st == e.stat:
                    ready[p] = e.folder
                else:  # changed without an event (a rescan's path, or events missed)
                    e.seen, e.wait, e.stat = self._clock(), self.settle, st
                    e.version += 1
            for p in self._held_back(set(ready)):
                del ready[p]
            out = Ready()
            for p, folder in ready.items():
                del self._entries[p]
                (out.folders if folder else out.files).add(p)
            for p in ready:
                self._unlink(p)
            for s, d in list(self._renames.items()):
                if s not in self._entries and d not in self._entries:
                    out.renames[s] = d
                    del self._renames[s]
            return out

    def _held_back(self, ready: set[str]) -> set[str]:
        """The ready paths linked to one still settling (the other end of a rename, or of
        what may be a move), and the ready paths linked to those, and so on."""
        held: set[str] = set()
        grew = True
        while grew:
            grew = False
            for p in ready - held:
                if any(
                    o in self._entries and (o not in ready or o in held)
                    for o in self._links.get(p, ())
                ):
                    held.add(p)
                    grew = True
        return held

    def _unlink(self, path: str) -> None:
        for other in self._links.pop(path, ()):
            partners = self._links.get(other)
            if partners is not None:
                partners.discard(path)
                if not partners:
                    del self._links[other]


def _exclude_matcher(exclude: Iterable[str]) -> Callable[[str], bool] | None:
    return crawl._exclude_matcher(exclude)


class PathRules:
    """Which changed paths count, by the rules of ``crawl.walk`` (see the module docstring)."""

    def __init__(
        self, *, hidden: bool = False, exclude: Iterable[str] = (), ignore: Iterable[str] = ()
    ) -> None:
        self.hidden = hidden
        self.exclude = list(exclude)
        self.excluded = _exclude_matcher(self.exclude)
        self.ignore = [os.path.abspath(p) for p in ignore]

    def wanted(self, path: str, root: str, *, folder: bool = False) -> bool:
        """Whether ``path`` (under ``root``) is a photo or video file, or with ``folder`` a
        folder, that an index run's walk of ``root`` would look at."""
        if any(under(path, ig) for ig in self.ignore):
            return False
        if path == root:
            return folder or crawl.is_image_name(path)
        rel = path[len(root.rstrip(os.sep)) :].lstrip(os.sep)
        parts = rel.split(os.sep) if rel else []
        so_far = root.rstrip(os.sep)
        for k, name in enumerate(parts):
            so_far = so_far + os.sep + name
            last = k == len(parts) - 1
            if name.startswith(".") and (not self.hidden or crawl.is_junk(name)):
                return False
            if (not last or folder) and crawl.is_junk(name):
                return False
            if self.excluded is not None and (self.excluded(name) or self.excluded(so_far)):
                return False
        name = parts[-1] if parts else path
        if folder or crawl.is_image_name(name):
            return True
        return crawl.is_video_name(name) and not _live_video(path, name)


def _live_video(path: str, name: str) -> bool:
    """Whether the video at ``path`` is a Live Photo's moving part, beside its photo: the walk
    leaves it out (the photo is the item), and so does a watch."""
    try:
        size = os.stat(path).st_size
        stems = crawl.live_photo_stems(os.listdir(os.path.dirname(path) or "."))
    except OSError:
        return False
    return crawl.is_live_video(name, size, stems)


def _event_types() -> list[type]:
    from watchdog import events as ev

    return [
        ev.FileCreatedEvent,
        ev.FileModifiedEvent,
        ev.FileAttribEvent,
        ev.FileClosedEvent,
        ev.FileDeletedEvent,
        ev.FileMovedEvent,
        ev.DirDeletedEvent,
        ev.DirMovedEvent,
        ev.EventsLostEvent,
    ]


@dataclass(frozen=True)
class Trouble:
    """Why a root's events were not enough: ``limit``, some folders are left unwatched (rescan
    it from now on); else events were lost (rescan it once)."""

    why: str
    limit: bool = False


LOST = Trouble("events were lost (the kernel's queue overflowed)")


def limit_reason(e: OSError) -> str:
    """Why a root could not be watched, for a person."""
    if e.errno == errno.ENOSPC:
        return "the system's limit of file watches is reached (fs.inotify.max_user_watches)"
    if e.errno == errno.EMFILE:
        return "the system's limit of file watchers is reached (fs.inotify.max_user_instances)"
    return f"its changes cannot be watched ({files.os_error_reason(e)})"


class EventSource:
    """The operating system's events for the roots followed, noted in a :class:`Settler`."""

    def __init__(self, settler: Settler, rules: PathRules) -> None:
        from watchdog.observers import Observer

        self.settler = settler
        self.rules = rules
        self._roots: dict[str, object] = {}  # root → its watchdog watch
        self._lock = threading.Lock()
        self._trouble: dict[str, Trouble] = {}  # root → why it needs rescanning
        self._observer = Observer()
        self._observer.start()
        self._log = _WatchdogLog(self)
        self._log.attach()

    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    def follow(self, root: str) -> str | None:
        """Watch ``root`` (recursively). None when its events come; else why they cannot
        (then the caller rescans it)."""
        if root in self._roots:
            return None
        from watchdog.events import FileSystemEventHandler

        source = self

        class Handler(FileSystemEventHandler):
            def dispatch(self, event) -> None:  # noqa: ANN001 - watchdog's event
                source._event(root, event)

        try:
            watch = self._observer.schedule(
                Handler(), root, recursive=True, event_filter=_event_types()
            )
        except OSError as e:
            return limit_reason(e)
        self._roots[root] = watch
        return None

    def unfollow(self, root: str) -> None:
        watch = self._roots.pop(root, None)
        if watch is not None:
            try:
                self._observer.unschedule(watch)  # type: ignore[arg-type]
            except (KeyError, OSError):
                pass

    def trouble(self) -> dict[str, Trouble]:
        """Roots whose events were not enough since the last call (a folder left unwatched,
        events dropped), with why: rescan them."""
        with self._lock:
            out, self._trouble = self._trouble, {}
        return out

    def _flag(self, path: str, why: Trouble) -> None:
        root = self._root_of(path)
        if root is not None:
            with self._lock:
                self._trouble.setdefault(root, why)

    def _root_of(self, path: str) -> str | None:
        best = None
        for r in list(self._roots):
            if under(path, r) and (best is None or len(r) > len(best)):
                best = r
        return best

    def _event(self, root: str, event) -> None:  # noqa: ANN001
        from watchdog import events as ev

        src = os.fsdecode(event.src_path)
        if isinstance(event, ev.EventsLostEvent):
            with self._lock:
                self._trouble.setdefault(root, LOST)
            return
        wanted = self.rules.wanted
        settler = self.settler
        if isinstance(event, ev.DirMovedEvent | ev.FileMovedEvent):
            folder = isinstance(event, ev.DirMovedEvent)  # a file's move settles quickly
            dst = os.fsdecode(event.dest_path)
            ok_src, ok_dst = wanted(src, root, folder=folder), wanted(dst, root, folder=folder)
            for path, ok in ((src, ok_src), (dst, ok_dst)):
                if ok:
                    settler.note(path, quick=not folder, folder=folder)
            if ok_src and ok_dst:
                settler.rename(src, dst)
        elif isinstance(event, ev.DirDeletedEvent):
            if src != root and wanted(src, root, folder=True):
                settler.note(src, folder=True)
        elif not event.is_directory and wanted(src, root):
            settler.note(src, quick=isinstance(event, ev.FileClosedEvent))

    def close(self) -> None:
        self._log.detach()
        self._observer.stop()
        self._observer.join(timeout=5)


class _WatchdogLog(logging.Handler):
    """Hears what watchdog only logs: a folder that could not be watched (the limit reached
    after start), a queue overflow; flags its root for rescanning. Keeps the lines off
    stderr (finder says it once, in its own words)."""

    NAME = "watchdog.observers.inotify"

    def __init__(self, source: EventSource) -> None:
        super().__init__(logging.WARNING)
        self.source = source

    def attach(self) -> None:
        log = logging.getLogger(self.NAME)
        log.addHandler(self)
        log.propagate = False

    def detach(self) -> None:
        logging.getLogger(self.NAME).removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        error = next((a for a in args if isinstance(a, OSError)), None)
        path = next((a for a in args if isinstance(a, (bytes, str))), None)
        if path is None:
            return
        path = os.fsdecode(path)
        if error is not None:
            self.source._flag(path, Trouble(limit_reason(error), limit=True))
        else:
            self.source._flag(path, LOST)
