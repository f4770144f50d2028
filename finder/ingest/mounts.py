"""What is mounted where: the mount points under a folder, whether one is still mounted,
whether a folder lives on a network file system (where the operating system sends no events
for changes made by other machines, so a watcher must rescan it), and which paths are on a
pseudo file system (proc, sysfs, ...: kernel interfaces, never walked for photos).

Read from ``/proc/self/mountinfo`` on Linux; elsewhere only :func:`os.path.ismount` is known
(no mount points are listed and no file system is called a network or a pseudo one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"

#: File system types that hold kernel interfaces, not photos: never walked, wherever a path or a
#: symbolic link leads into them (``/proc/self/root`` leads back to ``/``).
PSEUDO_FS: frozenset[str] = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "hugetlbfs",
        "binfmt_misc",
        "efivarfs",
        "selinuxfs",
        "rpc_pipefs",
        "nsfs",
    }
)

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


def pseudo_devices(mountinfo: str = MOUNTINFO) -> dict[int, str]:
    """The device number (``st_dev``) of every mounted pseudo file system, with its type, read
    from ``/proc/self/mountinfo``; empty where that cannot be read."""
    return {m.dev: m.fstype for m in mounts(mountinfo) if m.fstype in PSEUDO_FS}


def pseudo_reason(path: str, pseudo: dict[int, str] | None = None) -> str | None:
    """Why ``path`` is not walked, when it or a folder on its way is on a pseudo file system
    (``pseudo``: from :func:`pseudo_devices`, read when not given)."""
    pseudo = pseudo_devices() if pseudo is None else pseudo
    probe = path
    while True:
        try:
            fstype = pseudo.get(os.stat(probe).st_dev)
        except OSError:
            fstype = None
        if fstype is not None:
            return f"{path} is on {fstype}, a pseudo file system that holds no photos"
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent


def links_through_pseudo(path: str) -> bool:
    """True when the symbolic link ``path`` (or a link it leads to) names a path through a
    pseudo file system, like ``/proc/self/root``, a way back to ``/``."""
    for _ in range(40):
        try:
            target = os.path.join(os.path.dirname(path), os.readlink(path))
        except OSError:
            return False
        path = os.path.normpath(target)
        if pseudo_reason(path) is not None:
            return True
        if not os.path.islink(path):
            return False
    return True  # a loop of links: nothing to walk either
