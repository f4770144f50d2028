"""Exporting found photos: copies, symlinks, hard links; clashes renamed, nothing overwritten."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from finder.act.export import NEW, RENAMED, SAME, export
from finder.errors import ExportError, UsageError


def photo(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def sources(tmp_path: Path) -> list[str]:
    """Three photos, two of them named alike in different folders."""
    return [
        photo(tmp_path / "a" / "cat.jpg", b"first cat"),
        photo(tmp_path / "b" / "cat.jpg", b"second cat"),
        photo(tmp_path / "b" / "dog.jpg", b"a dog"),
    ]


@pytest.mark.parametrize("mode", ["copy", "link", "hardlink"])
def test_names_kept_and_clashes_renamed_without_overwriting(
    tmp_path: Path, sources: list[str], mode: str
) -> None:
    out = tmp_path / "album"
    out.mkdir()
    (out / "dog.jpg").write_bytes(b"somebody else's dog")  # already there, different
    done = export(sources, out, mode)
    assert [(Path(d.target).name, d.status) for d in done] == [
        ("cat.jpg", NEW),
        ("cat-1.jpg", RENAMED),
        ("dog-1.jpg", RENAMED),
    ]
    assert (out / "dog.jpg").read_bytes() == b"somebody else's dog"
    for d in done:
        assert Path(d.target).read_bytes() == Path(d.source).read_bytes()
        if mode == "link":
            assert os.readlink(d.target) == d.source
        elif mode == "hardlink":
            assert os.path.samefile(d.target, d.source)
        else:
            assert not os.path.islink(d.target) and not os.path.samefile(d.target, d.source)
            assert os.stat(d.target).st_mtime_ns == os.stat(d.source).st_mtime_ns
    # exporting the same answer again adds nothing
    again = export(sources, out, mode)
    assert [d.status for d in again] == [SAME, SAME, SAME]
    assert sorted(p.name for p in out.iterdir()) == ["cat-1.jpg", "cat.jpg", "dog-1.jpg", "dog.jpg"]


def test_missing_folder_is_created_nested(tmp_path: Path, sources: list[str]) -> None:
    done = export(sources[:1], tmp_path / "new" / "album", "copy")
    assert Path(done[0].target).read_bytes() == b"first cat"


def test_a_target_that_is_a_file_is_refused(tmp_path: Path, sources: list[str]) -> None:
    target = tmp_path / "album.jpg"
    target.write_bytes(b"x")
    with pytest.raises(UsageError, match="is a file") as info:
        export(sources, target, "copy")
    assert "\n" not in str(info.value)
    assert target.read_bytes() == b"x"


@contextmanager
def read_only(folder: Path):
    """A folder nobody can write into: chmod for a normal user; for root (whom chmod does not
    stop) the immutable attribute, when the file system has it."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    immutable = False
    if os.access(folder, os.W_OK):  # root
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(folder)]).returncode != 0:
            folder.chmod(0o755)
            pytest.skip("cannot make a read-only folder here (root without chattr +i)")
        immutable = True
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run([shutil.which("chattr") or "chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_a_read_only_target_is_refused_before_anything(
    tmp_path: Path, sources: list[str], mode: str
) -> None:
    with read_only(tmp_path / "locked") as folder:
        with pytest.raises(UsageError, match="read-only") as info:
            export(sources, folder, mode)
        assert "\n" not in str(info.value)
        assert list(folder.iterdir()) == []


def test_a_vanished_photo_stops_with_a_clear_error(tmp_path: Path, sources: list[str]) -> None:
    os.unlink(sources[1])
    with pytest.raises(ExportError, match="gone"):
        export(sources, tmp_path / "album", "copy")
    assert (tmp_path / "album" / "cat.jpg").read_bytes() == b"first cat"  # done stays done


def test_unknown_mode_is_refused(tmp_path: Path, sources: list[str]) -> None:
    with pytest.raises(UsageError, match="export mode"):
        export(sources, tmp_path / "album", "move")


def other_file_system(tmp_path: Path) -> Path:
    """A folder on another file system than ``tmp_path`` (the machine's /dev/shm), or a skip."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        pytest.skip("needs a writable /dev/shm")
    if shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system as the test's folder here")
    return shm


def test_hard_links_across_file_systems_are_refused_before_anything(
    tmp_path: Path, sources: list[str]
) -> None:
    shm = other_file_system(tmp_path)
    album = shm / f"finder-test-{os.getpid()}" / "album"
    with pytest.raises(UsageError, match="another file system") as info:
        export(sources, album, "hardlink")
    assert "\n" not in str(info.value) and sources[0] in str(info.value)
    assert not album.parent.exists()  # nothing was created, not even the folder
    existing = shm / f"finder-test-{os.getpid()}-existing"
    existing.mkdir()
    try:
        with pytest.raises(UsageError, match="another file system"):
            export(sources, existing, "hardlink")
        assert list(existing.iterdir()) == []
    finally:
        existing.rmdir()
    # on one file system the same photos link
    done = export(sources, tmp_path / "album", "hardlink")
    assert [os.path.samefile(d.source, d.target) for d in done] == [True] * 3


def test_a_folder_made_for_an_export_that_failed_is_not_left_behind(
    tmp_path: Path, sources: list[str]
) -> None:
    os.unlink(sources[0])
    with pytest.raises(ExportError, match="gone"):
        export(sources, tmp_path / "new" / "album", "copy")
    assert not (tmp_path / "new" / "album").exists()
