"""An index run's bookkeeping: walk a root, plan what changed, apply the plan, store results.

    plan = plan_root(catalog, root)              # walk → new / changed / moved / gone
    apply_plan(catalog, store, plan, summary)     # catalog and vectors follow the disk,
                                                  # sidecars added / changed / removed read
    items, dirs = pending_items(catalog, root)    # what is left to embed
    store_results(catalog, store, items, results, summary)   # vectors, then "ok"
    fill_facts(catalog, root, summary)           # facts of photos indexed before finder kept them

Videos (``finder.ingest.video``) are items like photos: walked, planned and stored alike. A
video's result carries one vector per sampled frame with the frames' times; its frames get
ids of their own (``Catalog.reserve_ids``), their vectors are made durable, then one commit
records the frames and marks the video ok (``finder.store.frames``). A changed video keeps its
old frames until the new ones replace them; a moved one keeps its id and so its frames; a
deleted or failed one loses them.

The plan is set-based: the walk goes into a temporary table and four queries compare it with
the catalog rows under the root (see :meth:`finder.store.catalog.Catalog.scan`). Unchanged
files (same size and mtime) are never read; a file with a new mtime but the same size is
fingerprinted, and when its content fingerprint is the recorded one it only gets its new mtime.
A changed file keeps its vector, and so its place in answers, until its new vector replaces it.
A new file whose size matches a vanished ``ok`` image is fingerprinted; on a match it is a
move: the row keeps its id, so its vector is reused.

Sidecars (``photo.jpg.xmp``, else ``photo.xmp``) are seen by the walk (their size, modification
time and name: ``crawl.Sidecar.stamp``) and compared with the stamp recorded when their keywords
were last read: an added, changed, renamed or removed sidecar is read again (:func:`read_sidecars`,
run by :func:`apply_plan`) whatever happened to its photo, and an unchanged one is never opened.
A sidecar that is not XMP leaves a note on its photo (``Catalog.sidecar_notes``) and a line in
``IndexSummary.messages``; the photo is indexed all the same and the sidecar never rewritten.

Crash safety of :func:`store_results`: vectors are appended and fsynced before the catalog
marks their images ``ok``, in commits of ``COMMIT_EVERY`` images or ``COMMIT_SECONDS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from finder.errors import DecodeError
from finder.ingest import crawl
from finder.ingest.crawl import FileFact, is_video_name
from finder.store.catalog import OK, PENDING, Catalog, ImageRow, StoredVideo

if TYPE_CHECKING:
    from finder.ingest.facts import PhotoFacts
    from finder.store.vectors import VectorStore

COMMIT_EVERY = 64  # images per catalog commit while embedding (bounds the work a crash loses)
COMMIT_SECONDS = 5.0  # ... or this many seconds, whichever comes first

# (key, vector or None, reason when None): what an embedding source yields, in any order;
# a fourth element, when present, is the photo's PhotoFacts (finder.ingest.facts) or None; a
# video's result has a fifth, its frames' times (seconds), and a vector per frame
Result = tuple[int, "np.ndarray | None", "str | None"]
FACTS_BATCH = 256  # photos whose facts are read between two catalog commits (fill_facts)


@dataclass
class IndexSummary:
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    resumed: int = 0  # left pending by an interrupted run (or a repair), embedded now
    embedded: int = 0  # photos and videos
    frames: int = 0  # of the videos embedded: the frames sampled and embedded
    facts_read: int = 0  # photos indexed earlier whose facts (date, camera, ...) were read now
    sidecars_read: int = 0  # sidecars added, changed or removed since last read
    sidecars_unreadable: int = 0  # of those, sidecars that are not XMP (a note on the photo)
    seconds: float = 0.0
    interrupted: bool = False
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Progress:
    """What an index run reports as it goes: ``phase`` is "walk", "embed" or "done"."""

    phase: str
    done: int = 0
    total: int = 0
    root: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class Plan:
    """One root's walk against the catalog."""

    root: str
    unchanged: int
    new: list[FileFact]
    redo: list[tuple[int, FileFact, str]]  # (id, fact, old status): changed or still pending
    moved: list[tuple[ImageRow, FileFact]]  # (the vanished row, where it is now)
    gone: list[ImageRow]  # vanished for good: rows and vectors to delete
    touched: list[tuple[int, FileFact]] = field(default_factory=list)  # new mtime, same content


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (the store and heads see unit vectors only)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def remove_present(store: VectorStore, ids: Sequence[int]) -> None:
    """Drop the vectors of ``ids`` that the store holds."""
    arr = np.asarray(ids, dtype=np.int64)
    present = arr[store.has(arr)]
    if len(present):
        store.remove(present)


def plan_root(
    catalog: Catalog,
    root: str,
    *,
    hidden: bool = False,
    exclude: Sequence[str] = (),
    videos: bool = True,
) -> Plan:
    """Walk ``root`` and compare it with the catalog: nothing is changed yet. Without
    ``videos`` the walk leaves videos out (as ``exclude`` would: those indexed before are
    gone)."""
    catalog.load_walk(crawl.walk([root], hidden=hidden, exclude=exclude, videos=videos))
    scan = catalog.scan(root)
    gone_by_size: dict[int, list[ImageRow]] = {}
    for row in scan.gone:
        if row.status == OK and row.fingerprint:
            gone_by_size.setdefault(row.size, []).append(row)
    new: list[FileFact] = []
    moved: list[tuple[ImageRow, FileFact]] = []
    for fact in scan.new:
        candidates = gone_by_size.get(fact.size)
        if candidates and not fact.is_dir:
            try:
                fp = crawl.fingerprint(fact.path, fact.size)
            except DecodeError:
                fp = None
            match = next((r for r in candidates if r.fingerprint == fp), None)
            if match is not None:
                candidates.remove(match)
                moved.append((match, fact))
                continue
        new.append(fact)
    moved_ids = {row.id for row, _ in moved}
    gone = [r for r in scan.gone if r.id not in moved_ids]
    redo, touched = _split_touched(catalog, scan.redo)
    return Plan(root, scan.unchanged + len(touched), new, redo, moved, gone, touched)


def _split_touched(
    catalog: Catalog, redo: list[tuple[int, FileFact, str]]
) -> tuple[list[tuple[int, FileFact, str]], list[tuple[int, FileFact]]]:
    """Changed files of the same size whose content fingerprint is the one recorded were only
    touched (copied back, restored, ``touch``-ed): they keep their vector, nothing is re-read."""
    candidates = [(i, f) for i, f, status in redo if status == OK and not f.is_dir]
    rows = catalog.rows_by_id([i for i, _ in candidates]) if candidates else {}
    touched: list[tuple[int, FileFact]] = []
    for i, fact in candidates:
        row = rows.get(i)
        if row is None or row.fingerprint is None or row.size != fact.size:
            continue
        try:
            if crawl.fingerprint(fact.path, fact.size) == row.fingerprint:
                touched.append((i, fact))
        except DecodeError:
            continue
    same = {i for i, _ in touched}
    return [r for r in redo if r[0] not in same], touched


def apply_plan(catalog: Catalog, store: VectorStore, plan: Plan, summary: IndexSummary) -> None:
    """Moves keep their ids, gone rows and their vectors are deleted, changed files go back
    to pending, new files are inserted as pending."""
    summary.unchanged += plan.unchanged
    if plan.touched:
        catalog.touch(plan.touched)
    with catalog.transaction():
        for row, fact in plan.moved:
            catalog.move(row.id, fact)
    summary.moved += len(plan.moved)
    deleted = [r.id for r in plan.gone]
    if deleted:
        frames = catalog.frame_ids_of(deleted)
        catalog.delete_images(deleted)
        remove_present(store, deleted + frames)
        summary.deleted += len(deleted)
    # changed files, and files still pending from an interrupted run, are embedded anew; a
    # changed file keeps its old vector (and its place in answers) until the new one replaces it
    summary.changed += sum(1 for _, _, status in plan.redo if status != PENDING)
    summary.resumed += sum(1 for _, _, status in plan.redo if status == PENDING)
    if plan.redo:
        catalog.mark_redo([(i, f) for i, f, _ in plan.redo])
    summary.new += len(plan.new)
    catalog.insert_pending(plan.new)
    read_sidecars(catalog, summary)


SIDECARS_BATCH = 512  # sidecars read between two catalog commits
NOTES_SHOWN = 3  # unreadable sidecars named in the run's messages


def read_sidecars(catalog: Catalog, summary: IndexSummary, workers: int | None = None) -> None:
    """Read the sidecars of the loaded walk that changed since they were last read (added,
    edited, renamed, removed: by their stamp), and store their keywords; nothing else is read.
    An unreadable sidecar is noted on its photo and ignored."""
    todo = catalog.sidecars_to_read()
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor

    from finder.ingest.keywords import XmpError, sidecar_keywords

    def read(item: tuple[int, str | None, str]) -> tuple[int, str, tuple[str, ...], str | None]:
        image_id, path, stamp = item
        if path is None:
            return image_id, stamp, (), None
        try:
            return image_id, stamp, sidecar_keywords(path), None
        except XmpError as e:
            return image_id, stamp, (), str(e)

    notes: list[str] = []
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        for start in range(0, len(todo), SIDECARS_BATCH):
            batch = todo[start : start + SIDECARS_BATCH]
            got = list(pool.map(read, batch))
            catalog.record_sidecars(got)
            summary.sidecars_read += sum(1 for _, path, _ in batch if path is not None)
            notes += [f"{item[1]}: {r[3]}" for item, r in zip(batch, got, strict=True) if r[3]]
    if notes:
        summary.sidecars_unreadable += len(notes)
        shown = "; ".join(notes[:NOTES_SHOWN]) + ("; ..." if len(notes) > NOTES_SHOWN else "")
        summary.messages.append(
            f"{len(notes)} sidecar{'s' if len(notes) > 1 else ''} could not be read and "
            f"{'were' if len(notes) > 1 else 'was'} ignored (the photos are indexed; "
            f"the sidecars left as they are): {shown}"
        )


def pending_items(catalog: Catalog, root: str) -> tuple[list[tuple[int, str]], list[int]]:
    """The pending files under ``root`` to embed, and the ids of directories named like photos
    (which fail at once)."""
    items: list[tuple[int, str]] = []
    dirs: list[int] = []
    for image_id, path in catalog.pending_under(root):
        (dirs.append(image_id) if os.path.isdir(path) else items.append((image_id, path)))
    return items, dirs


def without_videos(items: Sequence[tuple[int, str]]) -> tuple[list[tuple[int, str]], int]:
    """``items`` but the videos (an embedding source that reads photos only: ``--ray``), and
    how many were left out (they stay pending)."""
    kept = [(i, p) for i, p in items if not is_video_name(p)]
    return kept, len(items) - len(kept)


def store_results(
    catalog: Catalog,
    store: VectorStore,
    items: Sequence[tuple[int, str]],
    results: Iterable[Result],
    summary: IndexSummary,
    progress: ProgressFn | None = None,
    root: str = "",
) -> None:
    """Consume ``results`` (from the local pipeline or any other embedding source) for
    ``items``: vectors are made durable before the catalog marks them ``ok``; failures are
    recorded with their reason. A video's frames get ids of their own, reserved first; its
    old frames (a changed video's) leave the store once the new ones are recorded. Closes
    ``results`` when done or interrupted."""
    paths = dict(items)
    ok_ids: list[int] = []
    ok_vecs: list[np.ndarray] = []
    videos: list[tuple[int, np.ndarray, np.ndarray, float | None]] = []
    failed: list[tuple[int, str]] = []
    facts: list[tuple[int, PhotoFacts]] = []
    last = time.monotonic()
    done = 0

    def flush() -> None:
        nonlocal ok_ids, ok_vecs, videos, failed, facts, last
        frame_ids = catalog.reserve_ids(sum(len(times) for _, _, times, _ in videos))
        ids = ok_ids + frame_ids
        if ids:
            vectors = np.concatenate(
                ([np.stack(ok_vecs)] if ok_vecs else []) + [v for _, v, _, _ in videos]
            )
            store.add(np.asarray(ids, dtype=np.int64), unit(vectors))
            store.commit()  # vectors are durable before the catalog says "ok"
        stored: list[StoredVideo] = []
        start = 0
        for video_id, _, times, duration in videos:
            ids_here = frame_ids[start : start + len(times)]
            frames = list(zip(ids_here, times.tolist(), strict=True))
            stored.append(StoredVideo(video_id, frames, duration))
            start += len(times)
        fingerprints = []
        for i in ok_ids + [v.id for v in stored]:
            try:
                fingerprints.append((i, crawl.fingerprint(paths[i], os.path.getsize(paths[i]))))
            except (OSError, DecodeError):
                fingerprints.append((i, None))
        replaced = catalog.frame_ids_of([v.id for v in stored] + [i for i, _ in failed])
        if failed:
            remove_present(store, [i for i, _ in failed])
        catalog.record_results(fingerprints, failed, facts, stored)
        remove_present(store, replaced)  # old frames: the catalog no longer names them
        summary.embedded += len(ok_ids) + len(stored)
        summary.frames += len(frame_ids)
        summary.failed += len(failed)
        ok_ids, ok_vecs, videos, failed, facts = [], [], [], [], []
        last = time.monotonic()

    try:
        for image_id, vector, error, *rest in results:
            found = rest[0] if rest else None
            if vector is None:
                failed.append((image_id, error or "could not decode"))
            elif len(rest) > 1 and rest[1] is not None:  # a video: a vector per frame, times
                duration = getattr(found, "duration", None)
                videos.append((image_id, np.asarray(vector), np.asarray(rest[1]), duration))
            else:
                ok_ids.append(image_id)
                ok_vecs.append(vector)
            if vector is not None and found is not None:
                facts.append((image_id, found))
            done += 1
            if progress:
                progress(Progress("embed", done, len(items), root))
            pending = len(ok_ids) + len(videos) + len(failed)
            if pending >= COMMIT_EVERY or time.monotonic() - last > COMMIT_SECONDS:
                flush()
    finally:
        close = getattr(results, "close", None)
        if close:
            close()
        flush()


def fill_facts(
    catalog: Catalog, root: str, summary: IndexSummary, workers: int | None = None
) -> None:
    """Read the facts of the ok images under ``root`` that have none (indexed before finder
    kept them): headers and EXIF only, no pixels decoded, nothing re-embedded. A file that
    cannot be read now keeps no facts and is tried again next run."""
    todo = catalog.missing_facts_under(root)
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor

    from finder.ingest.decode import read_facts

    def read(item: tuple[int, str]) -> tuple[int, PhotoFacts | None]:
        try:
            if is_video_name(item[1]):
                from finder.ingest.video import read_video_facts

                return item[0], read_video_facts(item[1])
            return item[0], read_facts(item[1])
        except DecodeError:
            return item[0], None

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        for start in range(0, len(todo), FACTS_BATCH):
            got = [r for r in pool.map(read, todo[start : start + FACTS_BATCH]) if r[1] is not None]
            catalog.record_facts(got)  # type: ignore[arg-type]
            summary.facts_read += len(got)
