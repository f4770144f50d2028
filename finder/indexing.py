"""An index run over a library: the roots walked (and recorded in the teaching journal), the new
and changed photos and videos embedded (here, or, photos only, on a Ray cluster), their vectors
stored, catalog and vectors settled, then a backup of the catalog and the image map written
(:func:`finder.store.repair.after_index`); the page's thumbnails; the progress published for
other processes."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from finder import roots as known_roots
from finder import sync
from finder.embedder import Embedder
from finder.errors import Arg, UsageError
from finder.folder import Folder
from finder.ingest import mounts
from finder.store import repair as repairs
from finder.store.thumbs import ThumbCache
from finder.sync import IndexSummary, Progress, ProgressFn

if TYPE_CHECKING:
    from finder.embed.cluster import RaySource
    from finder.store.vectors import VectorStore


class Indexing:
    """Index runs of the library in ``folder``: photos embedded by ``embedder``, thumbnails
    kept in ``thumbs``."""

    def __init__(self, folder: Folder, embedder: Embedder, thumbs: ThumbCache) -> None:
        self.folder = folder
        self.embedder = embedder
        self.thumbs = thumbs

    def index(
        self,
        roots: Sequence[str],
        *,
        hidden: bool = False,
        exclude: Sequence[str] = (),
        progress: ProgressFn | None = None,
        thumbnails: bool = False,
        ray: str | None = None,
        videos: bool = True,
    ) -> IndexSummary:
        """Bring the library up to date with ``roots``: new files embedded, changed ones
        re-embedded, moved ones keep their vector, deleted ones dropped. Incremental and
        crash-safe; Ctrl-C keeps the work done so far (``summary.interrupted``). With
        ``thumbnails``, every indexed image also gets its thumbnail (see ``make_thumbnails``).
        Videos are indexed too (their sampled frames, ``finder.store.frames``); without
        ``videos`` they are left out, as ``exclude`` would leave them.

        ``ray``: embed on a Ray cluster instead of here (``"local"`` starts one for the run,
        ``"auto"`` joins the one ``ray start`` made, or ``HOST:PORT``); the walk, the catalog
        and the vectors stay here (see :mod:`finder.embed.cluster`). Takes the writer's lock
        (a dirty library is repaired first)."""
        folder, embedder = self.folder, self.embedder
        if not roots:
            raise UsageError("name at least one folder to index")
        if ray is not None:  # a bad address or a missing Ray: said before any walk
            from finder.embed import cluster, cluster_ray

            cluster_ray.check_address(ray)
            cluster_ray.require_ray()
        resolved = []
        for root in roots:
            path = os.path.abspath(os.path.expanduser(os.fspath(root)))
            if not os.path.exists(path):
                if not (folder.exists and known_roots.is_known(folder.open_catalog(), path)):
                    raise UsageError(f"no such folder: {root}")
                resolved.append(path)  # indexed before: offline, its photos kept (below)
                continue
            reason = mounts.pseudo_reason(path)
            if reason:
                raise UsageError(reason)
            resolved.append(path)
        started = time.monotonic()
        summary = IndexSummary()
        source: RaySource | None = None  # the embedding source of a --ray run
        if ray is not None:  # joined first: the nodes start their workers while the backbone loads
            source = cluster.RaySource(
                ray,
                {},
                weights=embedder.local_weights(),
                batch_size=embedder.batch_size,
                workers=embedder.workers,
            )
        try:
            if source is not None:
                source.start()
            recorded = folder.recorded_backbone()
            if recorded:
                embedder.check_choice(recorded)
            else:  # build the backbone before anything is written: a failure leaves no library
                embedder.backbone()
            folder.lock()
            if folder.recorded_backbone() is None:
                bb = embedder.backbone()
                if bb.precision_reason:
                    folder.messages.append(
                        f"computing in {bb.info.precision}: {bb.precision_reason}"
                    )
                folder.open_catalog_for_writing().set_meta("backbone", bb.info.to_dict())
            # the roots with their options and the backbone, kept where a lost catalog is not
            folder.journal.indexed(folder.open_catalog_for_writing(), resolved, hidden, exclude)
        except BaseException:
            if source is not None:
                source.close()
            raise
        folder.open_vectors_for_writing()
        store = folder.repair_if_dirty()
        catalog = folder.open_catalog_for_writing()
        if source is not None:
            source.info = dict(folder.recorded_backbone() or {})
        catalog.set_meta("dirty", True)
        progress = self.publishing(progress)
        try:
            for root in resolved:
                offline = known_roots.offline_parts(catalog, root)
                if any(part.path == root for part in offline):
                    folder.messages.append(known_roots.describe(catalog, offline[0]))
                    continue
                folder.messages.extend(known_roots.describe(catalog, part) for part in offline)
                self._index_root(
                    root,
                    store,
                    summary,
                    hidden,
                    exclude,
                    progress,
                    source,
                    offline,
                    videos,
                )
                known_roots.remember(catalog, root)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            folder.settle(store)
            if source is not None:
                source.close()
        summary.interrupted |= self._thumbnails_after_run(thumbnails, progress)
        if not summary.interrupted:
            repairs.after_index(catalog, folder.dir)  # a backup, the image map
        summary.seconds = time.monotonic() - started
        # the run's own messages, then the library's
        summary.messages = [*summary.messages, *folder.messages]
        if progress:
            progress(Progress("done", summary.embedded, summary.embedded))
        return summary

    def _index_root(
        self,
        root: str,
        store: VectorStore,
        summary: IndexSummary,
        hidden: bool,
        exclude: Sequence[str],
        progress: ProgressFn | None,
        source: RaySource | None,
        offline: Sequence[known_roots.Offline] = (),
        videos: bool = True,
    ) -> None:
        cat = self.folder.open_catalog_for_writing()
        if progress:
            progress(Progress("walk", root=root))
        plan = sync.plan_root(cat, root, hidden=hidden, exclude=exclude, videos=videos)
        sync.apply_plan(cat, store, known_roots.keep_offline(plan, offline), summary)
        items, dirs = sync.pending_items(cat, root)
        if dirs:
            cat.record_results([], [(i, "is a directory") for i in dirs])
            summary.failed += len(dirs)
        if items and source is not None:
            items, held = sync.without_videos(items)
            if held:
                self.folder.messages.append(
                    f"{held} videos left pending: a Ray cluster embeds photos only; "
                    "an index run on this machine indexes them"
                )
        if items:
            if source is not None:
                results = source.embed(items)
            else:
                results = self.embedder.embed(items, facts=True, videos=True)
            sync.store_results(cat, store, items, results, summary, progress, root)
        sync.fill_facts(cat, root, summary, self.embedder.workers)

    def roots(self) -> list[str]:
        """The folders indexed into this library (each index run records its roots)."""
        folder = self.folder
        return known_roots.paths(folder.open_catalog()) if folder.exists else []

    def forget_root(self, root: str) -> int:
        """Drop the photos under ``root`` (a root gone for good, e.g. an old disk) and its
        record; returns how many. Takes the writer's lock."""
        folder = self.folder
        path = os.path.abspath(os.path.expanduser(os.fspath(root)))
        if not folder.exists:
            raise UsageError(Arg("forget_root"), f": there is no library at {folder.dir}")
        folder.lock()
        store = None
        if folder.recorded_backbone():
            folder.open_vectors_for_writing()
            store = folder.repair_if_dirty()
        ids = known_roots.forget(folder.open_catalog_for_writing(), store, path)
        self.thumbs.drop(ids)
        return len(ids)

    # -- thumbnails -----------------------------------------------------------------------
    def make_thumbnails(self, progress: ProgressFn | None = None) -> tuple[int, int]:
        """Make the missing thumbnails of every indexed image (a video's: its frames'):
        (made, failed), a video counted once."""
        catalog = self.folder.open_catalog_for_writing()
        ids = catalog.ok_ids()
        last = max(ids, default=-1)
        rows = (r for lo in range(0, last + 1, 1000) for r in catalog.ok_rows(lo, lo + 1000))
        report = (
            (lambda done: progress(Progress("thumbnails", done, len(ids)))) if progress else None
        )
        return self.thumbs.make_many(
            rows, frames=catalog.frames_by_video, workers=self.embedder.workers, progress=report
        )

    def _thumbnails_after_run(self, make: bool, progress: ProgressFn | None) -> bool:
        """End of an index run: drop the thumbnails of images that changed or left, make the
        missing ones when asked. Returns True when Ctrl-C stopped it."""
        try:
            catalog = self.folder.open_catalog_for_writing()
            self.thumbs.sweep(catalog.ok_rows, catalog.frame_stamps)
            if make:
                self.make_thumbnails(progress)
        except KeyboardInterrupt:
            return True
        return False

    # -- progress -------------------------------------------------------------------------
    def publishing(self, progress: ProgressFn | None) -> ProgressFn:
        """``progress``, also published in the library folder for other processes."""
        from finder.store.progress import ProgressFile

        published = ProgressFile(self.folder.dir)

        def report(event: Progress) -> None:
            published.publish(event.phase, event.done, event.total, event.root)
            if progress:
                progress(event)

        return report

    def index_progress(self) -> dict[str, Any] | None:
        """The last progress published by an index run (``running`` tells whether it still
        runs), or None."""
        from finder.store.progress import read

        return read(self.folder.dir)
