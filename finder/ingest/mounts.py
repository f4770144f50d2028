"""What is mounted where: the mount points under a folder, whether one is still mounted, and
whether a folder lives on a network file system (where the operating system sends no events
for changes made by other machines, so a watcher must rescan it).

Read from ``/proc/self/mountinfo`` on Linux; elsewhere only :func:`os.path.ismount` is known
(no mount points are listed and no file system is called a network one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from finder.ingest.crawl import MOUNTINFO, PSEUDO_FS

#: File system types whose changes can come from another machine: no events for those.
NETWORK_FS: frozenset[str] = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "ncpfs",
        "coda",
        "fuse.sshfs",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.glusterfs",
        "fuse.davfs2",
        "fuse.smbnetfs",
    }
)


@dataclass(frozen=True)
class Mount:
    point: str  # where it is mounted (absolute)
    fstype: str  # as mountinfo names it: "ext4", "nfs4", "fuse.sshfs", ...
    dev: int  # the st_dev of files on it


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mounts(mountinfo: str = MOUNTINFO) -> list[Mount]:
    """Every mount of this process's view, in mountinfo's order (later mounts over earlier
    ones); empty where mountinfo cannot be read."""
    try:
        with open(mountinfo, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for raw in lines:
        fields = os.fsdecode(raw).split()
        try:
            fstype = fields[fields.index("-", 6) + 1]
            major, minor = fields[2].split(":")
            point = _unescape(fields[4])
        except (ValueError, IndexError):
            continue
        out.append(Mount(point, fstype, os.makedev(int(major), int(minor))))
    return out


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder == os.sep else folder + os.sep)


def points_under(folder: str, table: list[Mount] | None = None) -> list[str]:
    """Mount points at ``folder`` or below it (pseudo file systems left out), sorted."""
    table = mounts() if table is None else table
    return sorted({m.point for m in table if m.fstype not in PSEUDO_FS and _under(m.point, folder)})


def mount_of(path: str, table: list[Mount] | None = None) -> Mount | None:
    """The mount ``path`` lives on (the last mounted at the longest point above it)."""
    table = mounts() if table is None else table
    best: Mount | None = None
    for m in table:
        if _under(path, m.point) and (best is None or len(m.point) >= len(best.point)):
            best = m
    return best


def is_network(path: str, table: list[Mount] | None = None) -> str | None:
    """The network file system type ``path`` is on (``"nfs4"``, ``"fuse.sshfs"``, ...), or
    None when it is on a local one (or unknown)."""
    m = mount_of(path, table)
    return m.fstype if m is not None and m.fstype in NETWORK_FS else None


def is_mounted(point: str, table: list[Mount] | None = None) -> bool:
    """Whether something is mounted at ``point`` now: listed in the mount table, or (where
    there is none) on another device than its parent (``os.path.ismount``)."""
    table = mounts() if table is None else table
    if table:
        return any(m.point == point for m in table)
    try:
        return os.path.ismount(point)
    except OSError:
        return False
