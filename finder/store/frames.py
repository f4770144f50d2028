"""Videos and their frames in the catalog (a part of :class:`~finder.store.catalog.Catalog`).

A video is one row of ``images`` (``kind`` "video", with its ``duration`` in seconds and
``n_frames``, the number of frames sampled), one item like a photo: its status, path, size,
fingerprint and facts are a photo's. It holds no vector itself. Each sampled frame is a row of
``frames``: ``id`` (the id of the frame's vector in the store), ``video_id``, ``time`` (seconds
from the start). Frame ids come from the same counter as image ids (``meta.next_id``, reserved
before the vectors are written: :meth:`FrameTables.reserve_ids`), so an id in the store names
one photo or one frame, never both, and never another one later.

The invariants, with a photo's (one vector per ok photo):

- a video is ``ok`` only when all its frames are stored: its frames' vectors are written and
  made durable first, then one transaction inserts its ``frames`` rows (replacing the old
  ones of a changed video), sets ``n_frames`` and marks it ok;
- every frame row has a vector, and an ok video has ``n_frames`` frame rows;
- a changed video (pending again) keeps its old frames, and its place in answers, until its
  new ones replace them; a moved video keeps its id and so its frames; a deleted or failed
  video loses them.

:meth:`FrameTables.vector_ids` says which ids must and which may hold a vector, and
:meth:`FrameTables.vectors_lost` puts back to pending what lost one: the reconcile after a
crash (``Folder.settle``) and ``finder check`` read the catalog through these.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

PHOTO, VIDEO = "photo", "video"
_CHUNK = 500


@dataclass(frozen=True)
class VectorHolders:
    """Which ids the store must and may hold a vector for, by the catalog."""

    photos: np.ndarray  # ok photos: one vector each
    frames: np.ndarray  # frames of ok videos: one vector each
    allowed: np.ndarray  # everything that may hold one: ok or pending photos, every frame row

    @property
    def required(self) -> np.ndarray:
        return np.union1d(self.photos, self.frames)


@dataclass(frozen=True)
class StoredVideo:
    """A video's sampled frames, to record with its ``ok``: (frame id, time) each."""

    id: int
    frames: Sequence[tuple[int, float]]
    duration: float | None


def _ids(rows) -> np.ndarray:
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


class FrameTables:
    """The catalog's videos and frames (see the module docstring)."""

    def reserve_ids(self, n: int) -> list[int]:
        """``n`` new ids, never given before nor again (for frames' vectors, before the
        vectors are written: a crash between leaves unused ids, never reused ones)."""
        if n <= 0:
            return []
        with self.transaction():
            start = self.next_id()
            self._set_meta("next_id", start + n)
        return list(range(start, start + n))

    def _where_in(self, sql: str, ids: Sequence[int]) -> Iterator[tuple]:
        """The rows of ``sql`` for ``ids``: its ``{}`` becomes the placeholders of ``_CHUNK``
        ids at a time (SQLite's limit on variables)."""
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            yield from self.db.execute(sql.format(",".join("?" * len(chunk))), chunk)

    def frame_ids_of(self, video_ids: Sequence[int]) -> list[int]:
        """The frame ids of these videos (other ids have none)."""
        return [
            r[0] for r in self._where_in("SELECT id FROM frames WHERE video_id IN ({})", video_ids)
        ]

    def frames_of(self, video_id: int) -> list[tuple[int, float]]:
        """(frame id, time in seconds) of a video's frames, in time order."""
        return self.frames_by_video([video_id]).get(int(video_id), [])

    def frames_by_video(self, video_ids: Sequence[int]) -> dict[int, list[tuple[int, float]]]:
        """(frame id, time in seconds) of the frames of each of these ids that is a video with
        frames, in time order."""
        out: dict[int, list[tuple[int, float]]] = {}
        sql = "SELECT video_id, id, time FROM frames WHERE video_id IN ({}) ORDER BY time, id"
        for v, i, t in self._where_in(sql, video_ids):
            out.setdefault(int(v), []).append((int(i), float(t)))
        return out

    def frame_rows(self, frame_ids: Sequence[int]) -> dict[int, tuple[int, float]]:
        """For the frame ids among ``frame_ids``: (video id, time in seconds). Ids that are
        not frames (photos) are left out."""
        sql = "SELECT id, video_id, time FROM frames WHERE id IN ({})"
        return {int(i): (int(v), float(t)) for i, v, t in self._where_in(sql, frame_ids)}

    def frame_stamps(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """(frame id, its video's size, mtime_ns) of the frames with ``lo <= id < hi``: what
        names their thumbnails (``ThumbCache.sweep``)."""
        return [
            (int(i), int(size), int(mtime))
            for i, size, mtime in self.db.execute(
                "SELECT f.id, i.size, i.mtime_ns FROM frames f JOIN images i ON i.id = f.video_id"
                " WHERE f.id >= ? AND f.id < ?",
                [int(lo), int(hi)],
            )
        ]

    def kinds(self, image_ids: Sequence[int]) -> dict[int, str]:
        """The kind ("photo" or "video") of each of these image ids that the catalog has."""
        sql = "SELECT id, kind FROM images WHERE id IN ({})"
        return {int(i): k for i, k in self._where_in(sql, image_ids)}

    def durations(self, video_ids: Sequence[int]) -> dict[int, float | None]:
        """The duration in seconds of each of these ids that is a video (None: unknown)."""
        sql = "SELECT id, duration FROM images WHERE kind = 'video' AND id IN ({})"
        return {int(i): d for i, d in self._where_in(sql, video_ids)}

    def video_counts(self) -> dict[str, int]:
        """``videos``: ok videos; ``frames``: their frames (the vectors that stand for them)."""
        videos = self.db.execute(
            "SELECT count(*) FROM images WHERE kind = 'video' AND status = 'ok'"
        ).fetchone()[0]
        frames = self.db.execute(
            "SELECT count(*) FROM frames f JOIN images i ON i.id = f.video_id WHERE i.status = 'ok'"
        ).fetchone()[0]
        return {"videos": int(videos), "frames": int(frames)}

    def has_frames(self) -> bool:
        """Whether the catalog holds any video's frames (no count: a look at one row)."""
        return self.db.execute("SELECT EXISTS (SELECT 1 FROM frames)").fetchone()[0] == 1

    def _record_videos(self, conn, videos: Sequence[StoredVideo]) -> None:
        """Inside ``record_results``' transaction: each video's frames replace its old ones."""
        for v in videos:
            conn.execute("DELETE FROM frames WHERE video_id = ?", [int(v.id)])
            conn.executemany(
                "INSERT INTO frames(id, video_id, time) VALUES (?, ?, ?)",
                [(int(i), int(v.id), float(t)) for i, t in v.frames],
            )
            conn.execute(
                "UPDATE images SET kind = 'video', n_frames = ?, duration = ? WHERE id = ?",
                [len(v.frames), v.duration, int(v.id)],
            )

    # -- catalog against vectors --------------------------------------------------------------
    def vector_ids(self) -> VectorHolders:
        """Which ids must hold a vector (ok photos, frames of ok videos) and which may (also
        pending photos, which keep their old vector until the new one replaces it, and the
        frames of pending videos)."""
        photos = _ids(
            self.db.execute("SELECT id FROM images WHERE status = 'ok' AND kind != 'video'")
        )
        pending = _ids(
            self.db.execute("SELECT id FROM images WHERE status = 'pending' AND kind != 'video'")
        )
        frames = _ids(
            self.db.execute(
                "SELECT f.id FROM frames f JOIN images i ON i.id = f.video_id WHERE i.status = 'ok'"
            )
        )
        all_frames = _ids(self.db.execute("SELECT id FROM frames"))
        return VectorHolders(
            np.sort(photos), np.sort(frames), np.union1d(np.union1d(photos, pending), all_frames)
        )

    def stray_frames(self) -> list[int]:
        """Frame rows whose video is gone, failed or not a video (they hold nothing up)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT f.id FROM frames f LEFT JOIN images i ON i.id = f.video_id "
                "WHERE i.id IS NULL OR i.kind != 'video' OR i.status = 'failed'"
            )
        ]

    def incomplete_videos(self) -> list[int]:
        """Ok videos whose frame rows are not the ``n_frames`` they were stored with."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT i.id FROM images i LEFT JOIN frames f ON f.video_id = i.id "
                "WHERE i.kind = 'video' AND i.status = 'ok' "
                "GROUP BY i.id HAVING count(f.id) != coalesce(i.n_frames, -1)"
            )
        ]

    def vectors_lost(self, ids: Sequence[int]) -> int:
        """Ids that must hold a vector and do not: a photo goes back to pending; a frame's row
        goes and its video goes back to pending (embedded again by the next index run), as
        does any ok video missing some of its frames. Frame rows of no video are dropped.
        Returns the number of photos and videos now pending again."""
        ids = [int(i) for i in ids]
        with self.transaction() as conn:
            strays = self.stray_frames()
            lost = self.frame_rows(ids)
            conn.execute(
                "DELETE FROM frames WHERE id IN (SELECT value FROM json_each(?))",
                [_json([*strays, *lost])],
            )
            videos = {v for v, _ in lost.values()} | set(self.incomplete_videos())
            again = [i for i in ids if i not in lost] + sorted(videos)
            conn.executemany(
                "UPDATE images SET status = 'pending', error = NULL WHERE id = ?",
                [(i,) for i in again],
            )
        return len(again)


def _json(ids) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"
