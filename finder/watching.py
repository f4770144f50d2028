"""``finder index ROOT... --watch``: after the usual pass, follow the roots and keep the library
current until Ctrl-C.

    with Library(directory) as lib:
        lib.watch(["~/Pictures"], on_batch=print)      # or WatchOptions(poll=60.0), stop=event

:class:`Watcher` is the library's part that does it (handed the ``Folder``, the ``Embedder``,
``Indexing``, ``Teaching`` and the thumbnails); each call is one :class:`Watching`, the run's state.

One loop, in the calling thread, does all the writing: the process holds the library's lock
the whole time (it is the one writer); watchdog's threads only note paths in a
:class:`~finder.ingest.watch.Settler`. Each turn of the loop:

1. **Roots** (each second): a root that went offline (:mod:`finder.roots`: missing,
   unreadable, unmounted, empty) stops being followed, and the changes waiting under it are
   dropped: its photos stay. One that came back (or was replaced by another folder) is
   followed again and rescanned.
2. **Rescans**: the roots without events (``--poll``, network file systems, the system's
   watch limit reached) every ``poll`` seconds, the others every ``rescan`` seconds as a
   safety net (and at once when the kernel dropped events): a walk compared with the catalog
   by the index run's set-based queries; what differs is noted in the settler.
3. **A batch**: the settled changes are planned (:mod:`finder.changes`), applied
   (``sync.apply_plan``) and the files to embed go through the pipeline in one pass
   (``sync.store_results``: vectors fsynced before the catalog says ok, commits every 64
   images or 5 s). A burst (a card of 800 photos) is one or a few batches, the pipeline kept
   full; files still being written wait until they have settled. Every class scores the
   batch's photos at once (``Batch.classes``: how many entered each class's answer).

Crash safety is the index run's: ``meta.dirty`` is set before a batch changes anything and
cleared once its vectors and rows are committed; a kill leaves it set and the next writer
reconciles. Every ``checkpoint`` seconds while changes come, and when the watch stops, the
library is settled as at the end of an index run: catalog and vectors reconciled, the search
index saved (the raw log compacted when many of its rows are dead), the catalog backed up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from finder import changes, roots, sync
from finder.embedder import Embedder
from finder.errors import Arg, UsageError
from finder.folder import Folder
from finder.indexing import Indexing
from finder.ingest import crawl, mounts
from finder.ingest.watch import QUICK, SETTLE, EventSource, PathRules, Ready, Settler, under
from finder.store import backup as backups
from finder.store.thumbs import ThumbCache
from finder.sync import IndexSummary, Progress, ProgressFn
from finder.teach import Teaching

RESCAN = 1800.0  # seconds between two safety-net rescans of a root followed by events
NO_EVENTS_POLL = 60.0  # seconds between two rescans of a root without events (unless --poll)
CHECKPOINT = 600.0  # seconds between two checkpoints (index saved, backup) while changes come
ROOTS_EVERY = 1.0  # seconds between two checks of the roots (offline, back, replaced)
TICK = 0.5  # the longest the loop sleeps


@dataclass
class WatchOptions:
    """How to follow the roots: ``hidden`` and ``exclude`` as ``finder index``; ``poll``
    (seconds): rescan every root that often and use no events (network mounts); the rest are
    the loop's timings (tests and benchmarks shorten them)."""

    hidden: bool = False
    exclude: Sequence[str] = ()
    poll: float | None = None
    thumbnails: bool = False
    settle: float = SETTLE
    quick: float = QUICK
    rescan: float = RESCAN
    no_events_poll: float = NO_EVENTS_POLL
    checkpoint: float = CHECKPOINT

    def __post_init__(self) -> None:
        if self.poll is not None and not self.poll > 0:
            raise UsageError(Arg("poll"), f" must be more than 0 seconds, not {self.poll:g}")


@dataclass
class Batch:
    """What one batch of changes did: counts, the photos embedded (new or changed) and how
    many of them entered each class's answer (at or above its cut-off)."""

    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    embedded: int = 0
    failed: int = 0
    seconds: float = 0.0
    ids: list[int] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"batch": True, **asdict(self)}


BatchFn = Callable[[Batch], None]
SayFn = Callable[[str], None]


def _outermost(paths: Sequence[str]) -> list[str]:
    """The roots, a root inside another left out (the outer one's walk covers it)."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(under(p, q) for q in out):
            out.append(p)
    return out


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Watcher:
    """Following the roots of the library in ``folder`` (see the module docstring): its photos
    embedded by ``embedder``, its index runs made by ``indexing``, new photos scored by the
    classes of ``teaching``, its thumbnails in ``thumbs``."""

    def __init__(
        self,
        folder: Folder,
        embedder: Embedder,
        indexing: Indexing,
        teaching: Teaching,
        thumbs: ThumbCache,
    ) -> None:
        self.folder = folder
        self.embedder = embedder
        self.indexing = indexing
        self.teaching = teaching
        self.thumbs = thumbs

    def watch(
        self,
        root_paths: Sequence[str],
        options: WatchOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        on_index: Callable[[IndexSummary], None] | None = None,
        on_batch: BatchFn | None = None,
        say: SayFn | None = None,
        stop: threading.Event | None = None,
    ) -> IndexSummary:
        """Index ``root_paths`` as ``finder index`` does, then follow them until ``stop`` is
        set or Ctrl-C. Returns the totals (the pass's and every batch's)."""
        if not root_paths:
            raise UsageError("name at least one folder to watch")
        hooks = dict(progress=progress, on_index=on_index, on_batch=on_batch, say=say)
        return Watching(self, root_paths, options or WatchOptions(), **hooks).run(stop)


class Watching:
    """One watch of a library's roots, its state (see the module docstring)."""

    def __init__(
        self,
        parts: Watcher,
        root_paths: Sequence[str],
        options: WatchOptions,
        *,
        progress: ProgressFn | None = None,
        on_index: Callable[[IndexSummary], None] | None = None,
        on_batch: BatchFn | None = None,
        say: SayFn | None = None,
    ) -> None:
        self.folder = parts.folder
        self.embedder = parts.embedder
        self.indexing = parts.indexing
        self.teaching = parts.teaching
        self.thumbs = parts.thumbs
        self.o = options
        self.roots = _outermost([os.path.abspath(os.path.expanduser(r)) for r in root_paths])
        self.rules = PathRules(
            hidden=options.hidden, exclude=options.exclude, ignore=[str(self.folder.dir)]
        )
        self.settler = Settler(options.settle, options.quick)
        self.events: EventSource | None = None
        self._hook = progress
        self.progress = progress
        self._stop = threading.Event()  # set by ``run``'s caller to end the watch
        self.on_index = on_index or (lambda _s: None)
        self.on_batch = on_batch or (lambda _b: None)
        self.say = say or (lambda _m: None)
        self.every: dict[str, float | None] = {}  # root → seconds between rescans (None: offline)
        self.next_scan: dict[str, float] = {}
        self.offline: dict[str, frozenset[str]] = {}  # root → its offline parts' paths
        self.parts: list[roots.Offline] = []
        self.ident: dict[str, tuple[int, int] | None] = {}
        self.points: dict[str, list[str]] = {}  # root → the mount points inside it
        self.said: set[str] = set()
        self.changed = False  # since the last checkpoint
        self.last_checkpoint = time.monotonic()
        self.next_roots = 0.0
        self.total = IndexSummary()

    # -- the loop -----------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> IndexSummary:
        """The usual pass, then follow the roots until ``stop`` is set or Ctrl-C. Returns the
        totals (the pass's and every batch's)."""
        stop = stop or threading.Event()
        self._stop = stop
        self.progress = self._stoppable(self.progress)
        self._check_new_roots()
        if self.folder.exists:  # the one writer from now on (a new library: from its pass)
            self.folder.lock()
            self.folder.note_following(self.roots)
        started = False
        try:
            if self.o.poll is None:
                self.events = EventSource(self.settler, self.rules)
            self._check_roots(initial=True)  # followed before the pass: nothing is missed
            summary = self.indexing.index(
                self.roots,
                hidden=self.o.hidden,
                exclude=self.o.exclude,
                progress=self.progress,
                thumbnails=self.o.thumbnails,
            )
            started = True
            self._add(summary)
            self.folder.messages.clear()
            self.on_index(summary)
            if summary.interrupted:
                return self.total
            self.folder.note_following(self.roots, [p.path for p in self.parts])
            self.progress = self._stoppable(self.indexing.publishing(self._hook))
            self._warm_up()
            self._check_roots()
            while not stop.is_set():
                self._turn()
        except KeyboardInterrupt:
            self.total.interrupted = True
        finally:
            if self.events is not None:
                self.events.close()
            if started:
                self._checkpoint(final=True)
        return self.total

    def _stoppable(self, progress: ProgressFn | None) -> ProgressFn:
        """``progress``, which ends the pass or the batch under way as Ctrl-C would once
        ``stop`` is set (from another thread: ``finder serve --watch``)."""

        def report(event: Progress) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt
            if progress:
                progress(event)

        return report

    def _check_new_roots(self) -> None:
        """A root that does not exist and was never indexed is a mistake, said at once."""
        folder = self.folder
        for root in self.roots:
            if not os.path.exists(root) and not (
                folder.exists and roots.is_known(folder.open_catalog(), root)
            ):
                raise UsageError(f"no such folder: {root}")

    def _turn(self) -> None:
        self.settler.wait(TICK)
        now = time.monotonic()
        if now >= self.next_roots:
            self._check_roots()
        self._trouble()
        for root, every in list(self.every.items()):
            if every is not None and now >= self.next_scan.get(root, 0.0):
                self._rescan(root)
                self.next_scan[root] = time.monotonic() + every  # from the end of this one
        ready = self.settler.take()
        if ready:
            self._check_roots()  # checked again right before anything is changed
            self._batch(ready)
        if self.changed and time.monotonic() - self.last_checkpoint >= self.o.checkpoint:
            self._checkpoint()

    def _warm_up(self) -> None:
        """Load the backbone now (and run it once), not at the first photo."""
        bb = self.embedder.backbone()
        w, h = bb.info.input_size
        bb.embed(np.zeros((1, h, w, 3), dtype=np.uint8))

    # -- roots --------------------------------------------------------------------------
    def _say_once(self, key: str, line: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.say(line)

    def _follow(self, root: str) -> None:
        """Follow ``root`` by events where it can be, else by rescans (said once)."""
        why = None
        if self.events is not None:
            self.events.unfollow(root)
            why = self.events.follow(root)
        net = mounts.is_network(root)
        if self.o.poll is not None:
            every = self.o.poll
        elif why is None and net is None:
            every = self.o.rescan
        else:
            every = self.o.no_events_poll
            if why is None:
                why = f"{root} is on {net}: a network file system sends no events for changes "
                why += "made elsewhere"
            self._say_once(f"poll {root}", f"{why}; {root} is rescanned every {every:g} s")
        self.every[root] = every
        self.next_scan[root] = time.monotonic() + every
        self.ident[root] = _identity(root)

    def _check_roots(self, initial: bool = False) -> None:
        """Offline roots stop being followed; roots back (or replaced) are followed again and
        rescanned. ``initial``: before the first pass (which says what is offline)."""
        self.next_roots = time.monotonic() + ROOTS_EVERY
        # before the first pass, read only (the pass takes the lock); then the writer's
        if not self.folder.exists:
            cat = None
        elif initial:
            cat = self.folder.open_catalog()
        else:
            cat = self.folder.open_catalog_for_writing()
        table = mounts.mounts()
        parts_all: list[roots.Offline] = []
        for root in self.roots:
            parts = roots.offline_parts(cat, root, table=table) if cat is not None else []
            parts_all += parts
            now_off = frozenset(p.path for p in parts)
            prev = self.offline.get(root)
            ident = None if root in now_off else _identity(root)
            points = mounts.points_under(root, table)  # a disk mounted inside: rescan
            same_mounts = self.points.get(root) == points
            self.points[root] = points
            if prev == now_off and (root in now_off or ident == self.ident.get(root)):
                if same_mounts:
                    continue
            self.offline[root] = now_off
            for p in parts:
                self.settler.drop_under(p.path)
                if not initial and p.path not in (prev or ()):
                    assert cat is not None
                    self.say(roots.describe(cat, p))
            for back in (prev or frozenset()) - now_off:
                self.say(f"{back} is back online")
            if root in now_off:
                if self.events is not None:
                    self.events.unfollow(root)
                self.every[root] = None
                self.ident[root] = None
                continue
            self._follow(root)
            if not initial:
                self.next_scan[root] = 0.0  # rescanned at once: what changed while away
                assert cat is not None
                roots.remember(cat, root, table)  # its mount points now
        if [p.path for p in parts_all] != [p.path for p in self.parts]:
            self.folder.note_following(self.roots, [p.path for p in parts_all])
        self.parts = parts_all

    def _trouble(self) -> None:
        if self.events is None:
            return
        for root, trouble in self.events.trouble().items():
            every = self.every.get(root)
            if every is None:
                continue
            if trouble.limit and every > self.o.no_events_poll:
                self.every[root] = self.o.no_events_poll
                self._say_once(
                    f"poll {root}",
                    f"{trouble.why}: the folders of {root} left unwatched are rescanned every "
                    f"{self.o.no_events_poll:g} s",
                )
            self.next_scan[root] = 0.0

    def _rescan(self, root: str) -> None:
        """Compare a walk of ``root`` with the catalog; note what differs in the settler."""
        if root in self.offline.get(root, frozenset()) or not self.folder.exists:
            return
        cat = self.folder.open_catalog_for_writing()
        try:
            cat.load_walk(
                crawl.walk([root], hidden=self.o.hidden, exclude=self.o.exclude, videos=True)
            )
        except UsageError:  # vanished: the roots' check says so
            return
        scan = cat.scan(root)
        offline = [p.path for p in self.parts]
        found = [f.path for f in scan.new] + [f.path for _, f, _ in scan.redo]
        for path in [p for p in found if self.rules.wanted(p, root)] + [r.path for r in scan.gone]:
            if not any(under(path, p) for p in offline):
                self.settler.note(path, seen=True)

    # -- batches ------------------------------------------------------------------------
    def _batch(self, ready: Ready) -> None:
        started = time.monotonic()
        folder = self.folder
        cat, store = folder.open_catalog_for_writing(), folder.open_vectors_for_writing()
        online = [r for r in self.roots if r not in self.offline.get(r, frozenset())]
        plan, held = changes.plan_changes(
            cat, ready, online, self.rules, offline=self.parts, unsettled=self.settler.unsettled()
        )
        for path, partners in held.items():
            self.settler.note(path)
            self.settler.link(path, partners)
        if not (plan.new or plan.redo or plan.moved or plan.gone or plan.touched):
            return
        summary = IndexSummary()
        cat.set_meta("dirty", True)
        self.changed = True
        sync.apply_plan(cat, store, plan, summary)
        waiting, _ = self.settler.unsettled()
        items: list[tuple[int, str]] = []
        for root in online:
            found, dirs = sync.pending_items(cat, root)
            if dirs:
                cat.record_results([], [(i, "is a directory") for i in dirs])
                summary.failed += len(dirs)
            items += [(i, p) for i, p in found if p not in waiting]
        if items:
            results = self.embedder.embed(items, facts=True, videos=True)  # as an index run
            sync.store_results(cat, store, items, results, summary, self.progress)
        store.commit()
        cat.set_meta("dirty", False)
        stale = [i for i, _, _ in plan.redo] + [r.id for r in plan.gone]
        if stale:
            self.thumbs.drop(stale)
        ok = [r.id for r in cat.rows_by_id([i for i, _ in items]).values() if r.status == "ok"]
        if ok and self.o.thumbnails:
            rows = [r for r in cat.rows_by_id(ok).values()]
            self.thumbs.make_many(rows, frames=cat.frames_by_video, workers=self.embedder.workers)
        batch = Batch(
            new=summary.new,
            changed=summary.changed,
            moved=summary.moved,
            deleted=summary.deleted,
            embedded=summary.embedded,
            failed=summary.failed,
            seconds=time.monotonic() - started,
            ids=sorted(ok),
            classes=self._class_hits(ok),
        )
        self._add(summary)
        if self.progress:
            self.progress(Progress("done", summary.embedded, summary.embedded))
        for line in folder.messages:
            self.say(line)
        folder.messages.clear()
        self.on_batch(batch)

    def _class_hits(self, ids: list[int]) -> dict[str, int]:
        """How many of ``ids`` each class (learned on this backbone) now finds."""
        return {name: len(found) for name, found in self.teaching.hits(ids).items()}

    def _add(self, s: IndexSummary) -> None:
        t = self.total
        for name in ("new", "changed", "moved", "deleted", "unchanged", "failed", "embedded"):
            setattr(t, name, getattr(t, name) + getattr(s, name))
        t.resumed += s.resumed
        t.facts_read += s.facts_read
        t.seconds += s.seconds
        t.messages += s.messages

    def _checkpoint(self, final: bool = False) -> None:
        """Settle the library as an index run ends: reconcile, save the search index (and
        compact the raw log), clear ``meta.dirty``, back the catalog up."""
        if not self.changed and not final:
            return
        folder = self.folder
        folder.settle(folder.open_vectors_for_writing())
        if self.changed:
            backups.make_backup(folder.open_catalog_for_writing(), folder.dir / backups.BACKUP_DIR)
        self.changed = False
        self.last_checkpoint = time.monotonic()
