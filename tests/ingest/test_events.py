"""The event side of `finder index --watch`: which paths count, how a change settles, and the
operating system's events through watchdog (real inotify on real files)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from finder.ingest import mounts
from finder.ingest.watch import EventSource, PathRules, Ready, Settler

WAIT = 30.0  # seconds a test waits for an outcome before it fails


def _collect(settler: Settler, until, timeout: float = WAIT) -> Ready:
    """Take from the settler until ``until(ready_so_far)`` holds; everything taken, merged."""
    got = Ready()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        settler.wait(0.1)
        r = settler.take()
        got.files |= r.files
        got.folders |= r.folders
        got.renames.update(r.renames)
        if until(got):
            return got
    raise AssertionError(f"not settled in {timeout}s: {got}")


def test_rules_follow_the_walk(tmp_path: Path) -> None:
    root = str(tmp_path)
    lib = str(tmp_path / "library")
    rules = PathRules(exclude=["*.tmp.jpg", "*/skip"], ignore=[lib])
    assert rules.wanted(f"{root}/a/b.jpg", root)
    assert rules.wanted(f"{root}/a/B.HEIC", root)
    assert not rules.wanted(f"{root}/a/notes.txt", root)
    assert not rules.wanted(f"{root}/.hidden/b.jpg", root)
    assert not rules.wanted(f"{root}/a/.b.jpg", root)
    assert not rules.wanted(f"{root}/@eaDir/b.jpg", root)  # Synology's thumbnails
    assert not rules.wanted(f"{root}/a/x.tmp.jpg", root)
    assert not rules.wanted(f"{root}/skip/b.jpg", root)
    assert not rules.wanted(f"{lib}/thumbs/0/1-2-3.jpg", root)  # the library's own JPEGs
    assert rules.wanted(f"{root}/a", root, folder=True)
    assert not rules.wanted(f"{root}/.git", root, folder=True)
    with_hidden = PathRules(hidden=True)
    assert with_hidden.wanted(f"{root}/.hidden/b.jpg", root)
    assert not with_hidden.wanted(f"{root}/.Trash-1000/b.jpg", root)  # junk even then


def test_a_file_being_written_is_taken_once_it_stopped_changing(tmp_path: Path) -> None:
    settler = Settler(settle=0.6, quick=0.2)
    source = EventSource(settler, PathRules())
    try:
        assert source.follow(str(tmp_path)) is None
        path = tmp_path / "slow.jpg"
        final = 12 * 1000

        def write_slowly() -> None:
            with open(path, "wb") as f:  # closed only at the end, as a download is
                for _ in range(12):
                    f.write(b"x" * 1000)
                    f.flush()
                    time.sleep(0.25)

        writer = threading.Thread(target=write_slowly)
        writer.start()
        sizes = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            settler.wait(0.1)
            if str(path) in settler.take().files:
                sizes.append(path.stat().st_size)
                break
        writer.join()
        assert sizes == [final], "taken before the file stopped changing"
    finally:
        source.close()


def test_a_change_seen_without_events_settles_by_looking_twice(tmp_path: Path) -> None:
    """A rescan notes a path (no events follow): it is taken only once two looks a settle
    apart agree."""
    settler = Settler(settle=0.3, quick=0.1)
    path = tmp_path / "a.jpg"
    path.write_bytes(b"1")
    settler.note(str(path))
    path.write_bytes(b"12")  # changed after it was noted, with no event to say so
    got = _collect(settler, lambda r: str(path) in r.files)
    assert got.files == {str(path)}
    assert len(settler) == 0


def test_a_rename_end_waits_for_the_other(tmp_path: Path) -> None:
    settler = Settler(settle=0.5, quick=0.05)
    src, dst = str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")
    Path(dst).write_bytes(b"written")
    settler.note(src, quick=True)  # gone: due at once
    settler.note(dst)  # still settling
    settler.rename(src, dst)
    time.sleep(0.1)
    assert not settler.take()  # src is due, but its other end is not
    got = _collect(settler, lambda r: {src, dst} <= r.files)
    assert got.renames == {src: dst}


def test_linked_paths_are_taken_together(tmp_path: Path) -> None:
    """A vanished photo linked to a file of its size still settling (perhaps a copy of it)
    comes in the same batch as that file, not before."""
    settler = Settler(settle=0.5, quick=0.05)
    gone, copy = str(tmp_path / "gone.jpg"), str(tmp_path / "copy.jpg")
    Path(copy).write_bytes(b"copied")
    settler.note(copy)
    settler.note(gone)
    settler.link(gone, [copy])
    time.sleep(0.1)
    assert not settler.take()
    got = _collect(settler, lambda r: bool(r))
    assert got.files == {gone, copy}


def test_events_of_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "album").mkdir(parents=True)
    settler = Settler(settle=0.3, quick=0.1)
    source = EventSource(settler, PathRules())
    try:
        assert source.follow(str(root)) is None
        (root / "album" / "a.jpg").write_bytes(b"a")
        (root / "album" / "b.jpg").write_bytes(b"b")
        (root / "album" / "notes.txt").write_bytes(b"not a photo")
        got = _collect(settler, lambda r: len(r.files) >= 2)
        assert got.files == {str(root / "album" / "a.jpg"), str(root / "album" / "b.jpg")}
        os.rename(root / "album", root / "renamed")
        got = _collect(settler, lambda r: str(root / "album") in r.renames)
        assert got.renames[str(root / "album")] == str(root / "renamed")
        assert {str(root / "album"), str(root / "renamed")} <= got.folders
        os.rename(root / "renamed", tmp_path / "outside")  # moved out: a deletion here
        got = _collect(settler, lambda r: str(root / "renamed") in r.folders)
        assert not got.renames
    finally:
        source.close()


def test_a_root_that_cannot_be_watched_says_why(tmp_path: Path) -> None:
    settler = Settler()
    source = EventSource(settler, PathRules())
    try:
        why = source.follow(str(tmp_path / "missing"))
        assert why and "cannot be watched" in why
        assert source.roots == []
    finally:
        source.close()


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 8:17 / /media/my\040disk rw,relatime - vfat /dev/sdb1 rw
41 27 0:50 / /mnt/nas rw,relatime - nfs4 nas:/photos rw
42 41 0:51 / /mnt/nas/inner rw,relatime - fuse.sshfs host: rw
"""


def test_mount_table(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    table = mounts.mounts(str(info))
    assert [m.point for m in table] == [
        "/proc",
        "/",
        "/media/my disk",
        "/mnt/nas",
        "/mnt/nas/inner",
    ]
    assert mounts.points_under("/media", table) == ["/media/my disk"]
    assert mounts.points_under("/", table) == ["/", "/media/my disk", "/mnt/nas", "/mnt/nas/inner"]
    assert mounts.is_network("/mnt/nas/2019/a.jpg", table) == "nfs4"
    assert mounts.is_network("/mnt/nas/inner/a.jpg", table) == "fuse.sshfs"
    assert mounts.is_network("/media/my disk/a.jpg", table) is None
    assert mounts.is_network("/mnt/nasty", table) is None  # another folder, on /
    assert mounts.is_mounted("/mnt/nas", table) and not mounts.is_mounted("/mnt/usb", table)
    assert mounts.mounts(str(tmp_path / "absent")) == []


@pytest.mark.skipif(not os.path.exists(mounts.MOUNTINFO), reason="no /proc/self/mountinfo here")
def test_the_real_mount_table_holds_the_root() -> None:
    table = mounts.mounts()
    assert any(m.point == "/" for m in table)
    assert mounts.is_mounted("/", table)
