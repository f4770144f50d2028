"""crawl.walk and crawl.fingerprint on trees the tests build in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finder.errors import DecodeError, UsageError
from finder.ingest import crawl
from finder.ingest.crawl import FileFact, fingerprint, walk


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rel(facts, root: Path) -> list[str]:
    return [os.path.relpath(f.path, root) for f in facts]


def test_yields_image_files_with_facts(tmp_path: Path) -> None:
    a = touch(tmp_path / "a.jpg", b"12345")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "clip.mp4")
    touch(tmp_path / "raw.cr2")
    touch(tmp_path / "sub" / "B.JPEG")
    facts = list(walk(tmp_path))
    assert rel(facts, tmp_path) == ["a.jpg", "raw.cr2", "sub/B.JPEG"]
    videos_too = ["a.jpg", "clip.mp4", "raw.cr2", "sub/B.JPEG"]
    assert rel(walk(tmp_path, videos=True), tmp_path) == videos_too
    first = facts[0]
    assert first == FileFact(str(a), 5, a.stat().st_mtime_ns, False)
    assert all(os.path.isabs(f.path) and isinstance(f.path, str) for f in facts)


def test_every_listed_extension_is_found_case_insensitively(tmp_path: Path) -> None:
    for ext in sorted(crawl.IMAGE_EXTENSIONS):
        touch(tmp_path / f"low{ext}")
        touch(tmp_path / f"UP{ext.upper()}")
    assert len(list(walk(tmp_path))) == 2 * len(crawl.IMAGE_EXTENSIONS)
    assert {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".gif",
        ".heic",
        ".heif",
        ".tif",
        ".tiff",
        ".mpo",
        ".avif",
        ".jp2",
        ".j2k",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".dng",
        ".cr2",
        ".cr3",
        ".nef",
        ".arw",
        ".raf",
        ".orf",
        ".rw2",
    } <= (crawl.IMAGE_EXTENSIONS)


def test_every_video_extension_is_found_case_insensitively(tmp_path: Path) -> None:
    for ext in sorted(crawl.VIDEO_EXTENSIONS):
        touch(tmp_path / f"low{ext}")
        touch(tmp_path / f"UP{ext.upper()}")
    assert len(list(walk(tmp_path, videos=True))) == 2 * len(crawl.VIDEO_EXTENSIONS)
    assert not list(walk(tmp_path))
    assert crawl.VIDEO_EXTENSIONS == {
        ".mp4",
        ".mov",
        ".m4v",
        ".mkv",
        ".avi",
        ".webm",
        ".3gp",
        ".mts",
        ".m2ts",
    }


def test_a_live_photo_is_one_item_the_photo(tmp_path: Path) -> None:
    """IMG_1234.HEIC beside IMG_1234.MOV (any case, .jpg or .heif too, .mp4 too): the photo
    only. A video of another name, in another folder, or too large to be a Live Photo's stays."""
    touch(tmp_path / "IMG_1234.HEIC")
    touch(tmp_path / "IMG_1234.MOV")
    touch(tmp_path / "img_0007.jpg")
    touch(tmp_path / "IMG_0007.mp4")
    touch(tmp_path / "IMG_0008.MOV")
    touch(tmp_path / "other" / "IMG_1234.MOV")
    touch(tmp_path / "trip.jpg")
    with open(tmp_path / "trip.mov", "wb") as f:  # sparse: only its size matters here
        f.truncate(crawl.LIVE_PHOTO_MAX_BYTES + 1)
    assert rel(walk(tmp_path, videos=True), tmp_path) == [
        "IMG_0008.MOV",
        "IMG_1234.HEIC",
        "img_0007.jpg",
        "other/IMG_1234.MOV",
        "trip.jpg",
        "trip.mov",
    ]
    # named as a root, a Live Photo's video is indexed as asked
    assert rel(walk(tmp_path / "IMG_1234.MOV", videos=True), tmp_path) == ["IMG_1234.MOV"]


def test_fact_is_frozen_with_slots() -> None:
    fact = FileFact("/a.jpg", 1, 2)
    assert fact.is_dir is False
    with pytest.raises(AttributeError):
        fact.size = 3  # type: ignore[misc]
    assert not hasattr(fact, "__dict__")


def test_deterministic_sorted_depth_first_order(tmp_path: Path) -> None:
    for name in ["c.jpg", "a/z.jpg", "a/b.jpg", "b.jpg", "a/y/x.jpg", "d/e.jpg"]:
        touch(tmp_path / name)
    order = rel(walk(tmp_path), tmp_path)
    assert order == ["a/b.jpg", "a/y/x.jpg", "a/z.jpg", "b.jpg", "c.jpg", "d/e.jpg"]
    assert rel(walk(tmp_path), tmp_path) == order


def test_hidden_files_and_folders(tmp_path: Path) -> None:
    touch(tmp_path / "seen.jpg")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".secret" / "in.jpg")
    assert rel(walk(tmp_path), tmp_path) == ["seen.jpg"]
    assert rel(walk(tmp_path, hidden=True), tmp_path) == [
        ".hidden.jpg",
        ".secret/in.jpg",
        "seen.jpg",
    ]


def test_junk_is_skipped_even_with_hidden(tmp_path: Path) -> None:
    touch(tmp_path / "good.jpg")
    touch(tmp_path / "._good.jpg")  # AppleDouble
    touch(tmp_path / ".DS_Store")
    touch(tmp_path / "Thumbs.db")
    touch(tmp_path / "@eaDir" / "good.jpg" / "SYNOPHOTO_THUMB_XL.jpg")  # Synology
    touch(tmp_path / ".thumbnails" / "t.png")
    touch(tmp_path / "$RECYCLE.BIN" / "old.jpg")
    touch(tmp_path / ".Trash-1000" / "files" / "old.jpg")
    touch(tmp_path / "#recycle" / "old.jpg")
    touch(tmp_path / ".hidden.jpg")
    assert rel(walk(tmp_path, hidden=True), tmp_path) == [".hidden.jpg", "good.jpg"]


def test_exclude_globs_on_name_and_full_path(tmp_path: Path) -> None:
    touch(tmp_path / "keep" / "a.jpg")
    touch(tmp_path / "keep" / "a_small.jpg")
    touch(tmp_path / "cache" / "b.jpg")
    touch(tmp_path / "deep" / "x" / "cache" / "c.jpg")
    touch(tmp_path / "other" / "d.png")
    by_name = walk(tmp_path, exclude=["cache", "*_small.jpg"])
    assert rel(by_name, tmp_path) == ["keep/a.jpg", "other/d.png"]
    by_path = walk(tmp_path, exclude=[str(tmp_path / "deep") + "/*", "*/other/*"])
    assert rel(by_path, tmp_path) == ["cache/b.jpg", "keep/a.jpg", "keep/a_small.jpg"]


def test_directory_named_like_a_photo_is_reported_and_entered(tmp_path: Path) -> None:
    touch(tmp_path / "x.jpg" / "inside.png")
    facts = list(walk(tmp_path))
    assert [(os.path.relpath(f.path, tmp_path), f.is_dir) for f in facts] == [
        ("x.jpg", True),
        ("x.jpg/inside.png", False),
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_special_files_named_like_photos_are_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    assert rel(walk(tmp_path), tmp_path) == ["a.jpg"]


def test_symlink_loop_terminates_and_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "one.jpg")
    touch(tmp_path / "a" / "b" / "two.jpg")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "back")  # loop: a/b/back -> a
    os.symlink(tmp_path / "a" / "b" / "back", tmp_path / "z_link")  # another way into it
    facts = list(walk(tmp_path))
    assert rel(facts, tmp_path) == ["a/b/two.jpg", "a/one.jpg"]


def test_symlinks_are_followed_once(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "far.jpg")
    touch(outside / "dir" / "deep.jpg")
    lib = tmp_path / "lib"
    lib.mkdir()
    os.symlink(outside / "far.jpg", lib / "link.jpg")
    os.symlink(outside / "dir", lib / "linked_dir")
    os.symlink(lib / "link.jpg", lib / "link_to_link.jpg")  # same file again
    os.symlink(tmp_path / "nowhere.jpg", lib / "dangling.jpg")
    assert rel(walk(lib), lib) == ["link.jpg", "linked_dir/deep.jpg"]


def test_overlapping_roots_yield_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "b" / "c.jpg")
    touch(tmp_path / "a" / "d.jpg")
    facts = list(walk([tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "d.jpg"]))
    assert rel(facts, tmp_path) == ["a/b/c.jpg", "a/d.jpg"]


def test_root_that_is_a_file(tmp_path: Path) -> None:
    photo = touch(tmp_path / ".hidden_photo.JPG", b"abc")
    text = touch(tmp_path / "readme.txt")
    assert list(walk(photo)) == [FileFact(str(photo), 3, photo.stat().st_mtime_ns)]
    assert list(walk(text)) == []


def test_missing_root_raises_usage_error_before_yielding(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match="no such folder: .*nope"):
        walk([tmp_path, missing])  # raised by the call itself, not at first iteration


def test_relative_root_gives_absolute_paths(tmp_path: Path, monkeypatch) -> None:
    touch(tmp_path / "sub" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    assert [f.path for f in walk("sub")] == [str(tmp_path / "sub" / "a.jpg")]


def test_non_utf8_name_survives(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    try:
        with open(raw, "wb") as f:
            f.write(b"data")
    except (OSError, UnicodeError) as e:
        pytest.skip(f"file system refuses non-UTF-8 names: {e}")
    (fact,) = walk(os.fsdecode(tmp_path))
    assert isinstance(fact.path, str)
    assert os.fsencode(fact.path) == raw
    assert fact.size == 4


def test_non_utf8_name_decodes(tmp_path: Path) -> None:
    from PIL import Image

    from finder.ingest.decode import load_rgb

    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfe album", b"caf\xe9.jpg")
    try:
        os.makedirs(os.path.dirname(raw))
        with open(raw, "wb") as f:
            Image.new("RGB", (40, 30), (0, 200, 0)).save(f, format="JPEG")
    except (OSError, UnicodeError) as e:
        pytest.skip(f"file system refuses non-UTF-8 names: {e}")
    (fact,) = walk(tmp_path)
    assert load_rgb(fact.path, (8, 6))[3, 4, 1] > 180


def test_vanished_and_unstatable_entries_are_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "b" / "c.jpg")
    touch(tmp_path / "d.jpg")
    errors: list[str] = []
    it = walk(tmp_path, on_error=lambda p, e: errors.append(os.path.basename(p)))
    first = next(it)  # a.jpg; the listing of tmp_path is already taken
    (tmp_path / "d.jpg").unlink()  # vanishes between listing and stat
    (tmp_path / "b" / "c.jpg").unlink()
    (tmp_path / "b").rmdir()  # a folder vanishing before it is entered
    rest = list(it)
    assert os.path.basename(first.path) == "a.jpg"
    assert rest == []
    assert sorted(errors) == ["b", "d.jpg"]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not deny root, so permission denied cannot be shown",
)
def test_permission_denied_folder_is_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "open" / "a.jpg")
    locked = tmp_path / "locked"
    touch(locked / "b.jpg")
    locked.chmod(0)
    try:
        errors: list[OSError] = []
        facts = list(walk(tmp_path, on_error=lambda p, e: errors.append(e)))
        assert rel(facts, tmp_path) == ["open/a.jpg"]
        assert isinstance(errors[0], PermissionError)
    finally:
        locked.chmod(0o755)


def test_pseudo_file_systems_are_never_entered(tmp_path: Path) -> None:
    # Walking / itself would take long; links into /proc and /sys show the same rule (entering
    # /proc would also meet /proc/self/root, a way back to /).
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    touch(tmp_path / "a.jpg")
    for pseudo in ("/proc", "/sys", "/dev", "/run"):
        if os.path.isdir(pseudo):
            os.symlink(pseudo, tmp_path / pseudo.strip("/"))
    assert rel(walk(tmp_path), tmp_path) == ["a.jpg"]
    assert list(walk("/proc")) == []  # even named as a root, /proc is not entered


def test_fingerprint_content_not_name(tmp_path: Path) -> None:
    big = os.urandom(300_000)
    a = touch(tmp_path / "a.jpg", big)
    b = touch(tmp_path / "moved" / "renamed.jpg", big)
    fp = fingerprint(str(a), len(big))
    assert len(fp) == 32 and int(fp, 16) >= 0
    assert fingerprint(str(b), len(big)) == fp
    # A change in the last 64 KiB or the first changes it; a change in the middle does not
    # (by design: only the ends are read).
    tail = bytearray(big)
    tail[-10] ^= 1
    head = bytearray(big)
    head[10] ^= 1
    middle = bytearray(big)
    middle[150_000] ^= 1
    for data, same in ((tail, False), (head, False), (middle, True)):
        touch(tmp_path / "c.jpg", bytes(data))
        assert (fingerprint(str(tmp_path / "c.jpg"), len(big)) == fp) is same
    # The size is part of it.
    assert fingerprint(str(a), len(big) + 1) != fp


def test_fingerprint_small_and_empty_files(tmp_path: Path) -> None:
    small = touch(tmp_path / "s.jpg", b"abc")
    empty = touch(tmp_path / "e.jpg", b"")
    assert fingerprint(str(small), 3) != fingerprint(str(empty), 0)
    touch(tmp_path / "s2.jpg", b"abd")
    assert fingerprint(str(tmp_path / "s2.jpg"), 3) != fingerprint(str(small), 3)


def test_fingerprint_errors(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="^file vanished$"):
        fingerprint(str(tmp_path / "gone.jpg"), 10)
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(DecodeError, match="^is a directory$"):
        fingerprint(str(tmp_path / "d.jpg"), 10)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jpg")  # must not wait for a writer
        with pytest.raises(DecodeError, match="^not a regular file$"):
            fingerprint(str(tmp_path / "pipe.jpg"), 10)
