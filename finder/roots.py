"""The folders a library follows (its roots) and which of them are offline now.

Every root an index run walked is recorded in the catalog (``meta.roots``: its path, whether it
was a folder, and the mount points at or under it then). A root that vanishes is not a
deletion: its photos stay in the library, marked offline, until it comes back or the person
says ``finder index --forget-root ROOT``. The rule, for a recorded root (or a disk mounted
inside one):

- the folder is **missing**, **unreadable** (an I/O error) or **not answering** (a share
  whose server is gone: its probe is given up after PROBE_SECONDS, so that ``status`` and the
  watcher never hang on it);
- or it was a mount point when last indexed and **nothing is mounted there now** (an
  unmounted disk or share leaves its empty mount-point folder, or none);
- or the root is **empty** (not one entry) while the library holds photos under it, and
  finder cannot tell whether a disk was mounted there: no record of the root (a library
  indexed before finder recorded its roots) or no mount table (a system without
  ``/proc/self/mountinfo``). Where it can tell, an emptied root is a deletion as usual, and so
  is a folder emptied inside a root.

Anything else that is missing is a deletion. Offline photos stay in answers (``find``,
``similar``, the page), so that a class keeps its members and a disk that comes back needs
nothing embedded again; ``status`` lists the offline roots and counts their photos.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finder import sync
from finder.errors import Arg, UsageError, flag, worded
from finder.ingest import mounts
from finder.ingest.files import os_error_reason
from finder.store.catalog import OK, Catalog

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore

META_KEY = "roots"


@dataclass(frozen=True)
class Offline:
    """A recorded root, or a disk mounted inside one, that is offline now."""

    path: str
    root: str
    reason: str  # "missing", "unreadable (...)", "not mounted", "empty"


def under(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (``/a/b2`` is not below ``/a/b``)."""
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder == os.sep else folder + os.sep)


def recorded(catalog: Catalog) -> list[dict[str, Any]]:
    """The recorded roots: ``{"path", "dir", "mounts"}`` each (none in a library indexed before
    finder recorded them: its next index run records them)."""
    out = []
    for rec in catalog.get_meta(META_KEY, []) or []:
        if isinstance(rec, dict) and isinstance(rec.get("path"), str):
            out.append(rec)
    return out


def paths(catalog: Catalog) -> list[str]:
    return [r["path"] for r in recorded(catalog)]


def remember(catalog: Catalog, root: str, table: list[mounts.Mount] | None = None) -> None:
    """Record ``root`` (just walked, online) with the mount points at or under it now. A root
    inside a recorded one adds its mount points to that one; recorded roots inside it are
    replaced by it."""
    table = mounts.mounts() if table is None else table
    is_dir = os.path.isdir(root)
    points = set(mounts.points_under(root, table) if is_dir else [])
    recs = recorded(catalog)
    # a mount point recorded before stays while photos are kept under it (unmounted now)
    for rec in recs:
        if under(rec["path"], root) or under(root, rec["path"]):
            points |= {p for p in rec.get("mounts") or [] if catalog.has_under(p)}
    for rec in recs:
        if rec["path"] != root and under(root, rec["path"]):
            rec["mounts"] = sorted(set(rec.get("mounts") or []) | points)
            break
    else:
        recs = [r for r in recs if not under(r["path"], root)]
        recs.append({"path": root, "dir": is_dir, "mounts": sorted(points)})
        recs.sort(key=lambda r: r["path"])
    if recs != recorded(catalog):
        catalog.set_meta(META_KEY, recs)


def is_known(catalog: Catalog, root: str) -> bool:
    """Whether ``root`` was indexed: recorded, inside a recorded root, or holding photos."""
    return any(under(root, p) for p in paths(catalog)) or catalog.has_under(root)


def record_of(catalog: Catalog, root: str) -> dict[str, Any] | None:
    """The record of the recorded root ``root`` is, or is inside."""
    for rec in recorded(catalog):
        if under(root, rec["path"]):
            return rec
    return None


def offline_parts(
    catalog: Catalog,
    root: str,
    record: dict[str, Any] | None = None,
    table: list[mounts.Mount] | None = None,
) -> list[Offline]:
    """What of ``root`` is offline now: the root itself (then nothing else is listed), or the
    disks mounted inside it that are not mounted now and hold photos. Empty: all online."""
    record = record_of(catalog, root) if record is None else record
    table = mounts.mounts() if table is None else table
    was_dir = record is None or record.get("dir", True)
    reason = _root_reason(catalog, root, was_dir, record, table)
    if reason:
        return [Offline(root, root, reason)]
    out = []
    for point in (record or {}).get("mounts") or []:
        if point != root and under(point, root) and not mounts.is_mounted(point, table):
            if catalog.has_under(point):
                out.append(Offline(point, root, "not mounted"))
    return out


PROBE_SECONDS = 5.0  # a root's file system that does not answer in this long is offline
_probes: dict[str, threading.Thread] = {}
_probes_lock = threading.Lock()


def _probe(path: str) -> tuple[os.stat_result | OSError, bool | OSError | None] | None:
    """(stat of ``path`` or its error, whether the folder is empty or the error listing it)
    in a thread of its own; None when the file system does not answer within
    PROBE_SECONDS (a network share gone hard): ``status`` and the watcher never hang on it.
    While a probe of ``path`` is still stuck, no other is started."""
    with _probes_lock:
        stuck = _probes.get(path)
        if stuck is not None and stuck.is_alive():
            return None
    out: list = []

    def run() -> None:
        try:
            st = os.stat(path)
        except OSError as e:
            out.append((e, None))
            return
        if not stat.S_ISDIR(st.st_mode):
            out.append((st, None))
            return
        try:
            with os.scandir(path) as it:
                out.append((st, next(it, None) is None))
        except OSError as e:
            out.append((st, e))

    thread = threading.Thread(target=run, name="finder-probe", daemon=True)
    with _probes_lock:
        _probes[path] = thread
    thread.start()
    thread.join(PROBE_SECONDS)
    return out[0] if out else None


def _root_reason(
    catalog: Catalog,
    root: str,
    was_dir: bool,
    record: dict[str, Any] | None,
    table: list[mounts.Mount],
) -> str | None:
    probe = _probe(root)
    if probe is None:
        return f"not answering (for {PROBE_SECONDS:g} s)"
    st, empty = probe
    if isinstance(st, (FileNotFoundError, NotADirectoryError)):
        return "missing" if was_dir and catalog.has_under(root) else None
    if isinstance(st, OSError):
        return f"unreadable ({os_error_reason(st)})"
    if not stat.S_ISDIR(st.st_mode):
        return None
    if record is not None and record["path"] == root and root in (record.get("mounts") or []):
        if not mounts.is_mounted(root, table):
            return "not mounted"
    if isinstance(empty, OSError):
        return f"unreadable ({os_error_reason(empty)})"
    if empty and (record is None or not table) and catalog.has_under(root):
        return "empty"  # no record of what was mounted there: keep them, to be safe
    return None


def offline(catalog: Catalog, table: list[mounts.Mount] | None = None) -> list[Offline]:
    """Every offline part of every recorded root."""
    table = mounts.mounts() if table is None else table
    return [p for rec in recorded(catalog) for p in offline_parts(catalog, rec["path"], rec, table)]


def describe(catalog: Catalog, part: Offline) -> str:
    """One line for a person: what is offline, why, and that its photos are kept."""
    n = catalog.count_under(part.path, OK)
    what = "root" if part.path == part.root else f"disk mounted in {part.root}"
    return worded(
        [
            f"{part.path} ({what}) is offline ({part.reason}): its {n} photos are kept; "
            "`finder index ",
            Arg("forget_root", command="index"),
            f" {part.path}` drops them",
        ],
        flag,
    )


def keep_offline(plan: sync.Plan, parts: Sequence[Offline]) -> sync.Plan:
    """``plan`` without the deletion of photos under an offline part (they are kept)."""
    if parts and plan.gone:
        plan.gone = [r for r in plan.gone if not any(under(r.path, p.path) for p in parts)]
    return plan


def status(catalog: Catalog) -> dict[str, Any]:
    """``roots``, ``offline_roots`` (offline roots and disks mounted inside one) and
    ``offline`` (the photos on them) for ``finder status --json``."""
    parts = offline(catalog)
    return {
        "roots": paths(catalog),
        "offline_roots": [p.path for p in parts],
        "offline": sum(catalog.count_under(p.path, OK) for p in parts),
    }


def forget(catalog: Catalog, store: VectorStore | None, root: str) -> list[int]:
    """Drop every photo under ``root`` (and its vector) and the root's record: for a root that
    is gone for good. Returns the ids dropped."""
    if not is_known(catalog, root):
        known = ", ".join(paths(catalog)) or "none recorded"
        raise UsageError(
            Arg("forget_root"), f": {root} is not a folder of this library (roots: {known})"
        )
    ids = catalog.ids_under(root)
    if ids:
        catalog.delete_images(ids)
        if store is not None:
            sync.remove_present(store, ids)
            store.commit()
    recs = [r for r in recorded(catalog) if not under(r["path"], root)]
    if recs != recorded(catalog):
        catalog.set_meta(META_KEY, recs)
    return ids
