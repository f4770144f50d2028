"""The page's thumbnails made ahead (``finder index --thumbnails``, ``Library.make_thumbnails``)
and swept: a video's thumbnails are its frames' (``frames/``), made and counted as one item, never
as a failure; thumbnails of images and frames that changed or left the library are dropped at the
end of an index run and by ``finder repair``, a write in flight kept. Real PyAV, SQLite, model."""

from __future__ import annotations

import os
import time
from pathlib import Path

from finder.library import Library
from tests.conftest import CLI, make_photo
from tests.ingest.videos import Shot, slideshow


def media(root: Path) -> tuple[list[Path], Path]:
    """Two photos and a 4 s video of two shots (red, then blue) under ``root``."""
    photos = [make_photo(root / f"{k}.jpg", k, seed=i) for i, k in enumerate(("red", "blue"))]
    video = root / "clip.mp4"
    slideshow(video, [Shot(p, 2) for p in photos])
    return photos, video


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*.jpg")} if folder.is_dir() else set()


def test_index_thumbnails_makes_a_videos_frames_and_counts_it_made(tmp_path, model_args) -> None:
    photos, video = media(tmp_path / "media")
    library = tmp_path / "library"
    CLI(library)("index", str(tmp_path / "media"), *model_args, "--thumbnails", "-q")
    with Library(library) as lib:
        catalog = lib.folder.open_catalog()
        row = catalog.image_by_path(str(video))
        frames = catalog.frames_of(row.id)
        assert len(frames) >= 2
        assert all(lib.thumbs.frame_file(row, f).is_file() for f, _ in frames)
        photo_rows = [catalog.image_by_path(str(p)) for p in photos]
        assert all(lib.thumbs.cached(r) for r in photo_rows)
        assert lib.make_thumbnails() == (0, 0)  # nothing missing, the video no failure
        lib.thumbs.frame_file(row, frames[-1][0]).unlink()
        lib.thumbs.file_for(photo_rows[0]).unlink()
        assert lib.make_thumbnails() == (2, 0)  # the video (one item) and the photo
        assert lib.thumbs.frame_file(row, frames[-1][0]).is_file()
        # the page's thumbnail of the video is its first frame's, made ahead
        assert lib.thumbnail(row.id) == lib.thumbs.frame_file(row, frames[0][0])


def test_stale_thumbnails_and_frames_are_swept_by_index_and_repair(tmp_path, model_args) -> None:
    root = tmp_path / "media"
    photos, video = media(root)
    library = tmp_path / "library"
    cli = CLI(library)
    cli("index", str(root), *model_args, "--thumbnails", "-q")
    thumbs, frames_dir = library / "thumbs", library / "thumbs" / "frames"
    old_frames = files(frames_dir)
    assert old_frames and len(files(thumbs) - old_frames) == 2  # the photos'

    # the video changes (new frames, new ids) and a photo leaves: an index run drops theirs
    slideshow(video, [Shot(photos[1], 2), Shot(photos[0], 3)])
    photos[0].unlink()
    cli("index", str(root), "-q")
    assert files(frames_dir).isdisjoint(old_frames)
    with Library(library) as lib:
        kept = {lib.thumbs.file_for(lib.folder.open_catalog().image_by_path(str(photos[1]))).name}
    assert files(thumbs) - files(frames_dir) == kept

    # what no image or frame names (a catalog restored from an older backup leaves such), and
    # what a killed write left: `repair` drops them, and keeps a write in flight
    cli("index", str(root), "--thumbnails", "-q")
    live = files(thumbs)
    planted = [
        thumbs / "0" / "999-10-10.jpg",
        thumbs / "7" / "7001-10-10.jpg",
        frames_dir / "0" / "998-10-10.jpg",
        frames_dir / "3" / "3500-10-10.jpg",
    ]
    killed, in_flight = frames_dir / "0" / ".1-2-3.jpg.ab.tmp", thumbs / "0" / ".4-5-6.jpg.cd.tmp"
    for path in [*planted, killed, in_flight]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(killed, (an_hour_ago, an_hour_ago))
    report = cli.json("repair")
    assert report["thumbnails_dropped"] == len(planted) + 1
    assert files(thumbs) == live and in_flight.exists() and not killed.exists()
    assert cli("check").stdout.strip() == "no problems found"
