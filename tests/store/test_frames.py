"""finder.store.frames on a real SQLite catalog: the migration that brings videos, ids for
frames from the image counter, a video's frames recorded and replaced in one commit, and what
must and may hold a vector."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from finder.ingest.crawl import FileFact
from finder.store.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, StoredVideo


def video_migration_step() -> int:
    """The number of the migration that adds the frames table (renumbered on merges)."""
    return next(v for v, step in enumerate(MIGRATIONS) if "``frames``" in (step.__doc__ or ""))


def test_an_older_catalog_gains_kinds_and_frames(tmp_path: Path) -> None:
    """A catalog from before videos: every row becomes a photo, the frames table appears, and
    nothing else moves."""
    step = video_migration_step()
    conn = sqlite3.connect(tmp_path / "catalog.db")
    db = sqlite_utils.Database(conn)
    for migrate in MIGRATIONS[:step]:
        migrate(db)
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["meta"].insert({"key": "schema_version", "value": str(step)})
    conn.execute(
        "INSERT INTO images(id, path, size, mtime_ns, status) VALUES (7, ?, 1, 2, 'ok')",
        [b"/p/a.jpg"],
    )
    conn.commit()
    conn.close()
    cat = Catalog(tmp_path / "catalog.db")
    assert cat.get_meta("schema_version") == SCHEMA_VERSION
    assert cat.kinds([7]) == {7: "photo"}
    assert cat.frames_of(7) == [] and cat.video_counts() == {"videos": 0, "frames": 0}
    holders = cat.vector_ids()
    assert holders.photos.tolist() == [7] and holders.frames.tolist() == []
    cat.close()


def test_frames_recorded_replaced_and_counted(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.db")
    photo, video = cat.insert_pending([FileFact("/m/a.jpg", 10, 1), FileFact("/m/clip.MP4", 99, 1)])
    assert cat.kinds([photo, video]) == {photo: "photo", video: "video"}
    first = cat.reserve_ids(3)
    assert min(first) > video
    cat.record_results(
        [(photo, "fp1"), (video, "fp2")],
        [],
        videos=[StoredVideo(video, list(zip(first, [0.0, 4.0, 8.0], strict=True)), 12.0)],
    )
    assert cat.frames_of(video) == list(zip(first, [0.0, 4.0, 8.0], strict=True))
    assert cat.frame_rows([first[1], photo]) == {first[1]: (video, 4.0)}
    assert cat.video_counts() == {"videos": 1, "frames": 3}
    holders = cat.vector_ids()
    assert holders.photos.tolist() == [photo] and holders.frames.tolist() == first
    assert holders.required.tolist() == [photo, *first]

    # ids are never given twice: not after the frames, not after a deletion
    assert cat.next_id() > max(first)
    again = cat.reserve_ids(2)
    assert min(again) > max(first)
    cat.record_results([(video, "fp3")], [], videos=[StoredVideo(video, [(again[0], 1.0)], 2.0)])
    assert cat.frames_of(video) == [(again[0], 1.0)]  # the old frames replaced in one commit
    row = cat.db.execute("SELECT n_frames, duration FROM images WHERE id = ?", [video]).fetchone()
    assert row == (1, 2.0)

    # a changed video (pending) keeps its frames as holders; a failed one loses them
    cat.mark_redo([(video, FileFact("/m/clip.MP4", 100, 2))])
    holders = cat.vector_ids()
    assert holders.frames.tolist() == [] and again[0] in holders.allowed
    cat.record_results([], [(video, "truncated")])
    assert cat.frames_of(video) == [] and again[0] not in cat.vector_ids().allowed
    cat.close()


def test_vectors_lost_put_videos_back_to_pending(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.db")
    photo, video, other = cat.insert_pending(
        [FileFact("/m/a.jpg", 1, 1), FileFact("/m/v.mkv", 2, 1), FileFact("/m/w.webm", 3, 1)]
    )
    f = cat.reserve_ids(4)
    cat.record_results(
        [(photo, None), (video, None), (other, None)],
        [],
        videos=[
            StoredVideo(video, [(f[0], 0.0), (f[1], 5.0)], 9.0),
            StoredVideo(other, [(f[2], 0.0), (f[3], 5.0)], 9.0),
        ],
    )
    # a stray frame row (a hand edit), and ``other`` missing one of its frame rows
    cat.db.execute("INSERT INTO frames(id, video_id, time) VALUES (5000, 4242, 0.0)")
    cat.db.execute("DELETE FROM frames WHERE id = ?", [f[3]])
    assert cat.stray_frames() == [5000] and cat.incomplete_videos() == [other]
    again = cat.vectors_lost([photo, f[1]])  # the photo's vector and one frame's are gone
    assert again == 3
    assert {cat.image(i).status for i in (photo, video, other)} == {"pending"}
    assert cat.frames_of(video) == [(f[0], 0.0)]  # what remains stays searchable meanwhile
    assert cat.stray_frames() == []
    cat.close()
