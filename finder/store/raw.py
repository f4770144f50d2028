"""The append-only raw log of vectors: the truth every search index is derived from.

Files in the store's directory (``g`` is the generation, bumped by compaction)::

    manifest.json     {"format": 1, "dim": D, "generation": g}   written atomically, last
    vectors-g.f16     one float16 row of D values per added vector (append-only)
    ids-g.i64         the image id of each row (int64, append-only)
    dead-g.i64        row numbers that were removed or replaced (int64, append-only)
    sums-g.i64        one record per append: first row, row count, CRC-32 of its vectors and
                      of its ids (4 int64, append-only)

Every write is ordered (vectors, ids, sums, dead) so that a process killed at any instant leaves
files the next open repairs: a partial last row is cut off, an id present twice keeps its last
row (the older row is written to the dead log on the next write), rows without a sums record
get one. Compaction writes the live rows into the next generation's files; rewriting the
manifest is the switch, after which the old files are removed (by the next writable open, if a
kill came first).

Damage that no kill can cause is found at open: an ids file longer than the vectors file,
fewer rows than the sums records cover (a truncated or deleted file), ids that fail their
record's checksum (garbage). The rows affected are dropped, the log is rewritten into a fresh
generation (when writable) and :attr:`RawLog.damage` says what was found, so that the library
puts the images that lost their vector back to pending at once. The vectors' own checksums are
read by :meth:`RawLog.check` only (reading every vector at each open would cost seconds).
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from finder.errors import LibraryError
from finder.store import files

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 16384  # rows read from the raw file at a time when scanning or rebuilding
SUM_ROWS = 64  # rows per checksum record written by compaction (an index run's commits: 64)
KEYS = ("vec", "ids", "dead", "sums")


def _bytes_of(a: np.ndarray) -> memoryview:
    """The bytes of an array without copying them (a copy only if it is not contiguous)."""
    return memoryview(np.ascontiguousarray(a)).cast("B")


_FILE = re.compile(r"(vectors|ids|dead|sums)-(\d+)\.(f16|i64)")


class RawLog:
    """Rows of float16 vectors keyed by int64 ids, with tombstones, in one folder."""

    def __init__(self, directory: Path, dim: int, *, read_only: bool = False) -> None:
        self.dir = Path(directory)
        self.dim = int(dim)
        self.read_only = bool(read_only)
        self.row_bytes = 2 * self.dim
        self._fds: dict[str, int] | None = None
        self.closed = False
        self.pending_dups = 0  # duplicate rows found at open, not yet reported
        self._pending_dead: list[int] = []
        self.damage: str | None = None  # what was found damaged at open
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LibraryError(f"cannot create the vector store {self.dir}: {e.strerror}") from None
        self._open_manifest()
        self._load()
        if not self.read_only:
            self._remove_other_generations()
            if self.damage:
                self.compact()  # a fresh generation without the damaged rows

    # -- opening ---------------------------------------------------------------------------------
    def _open_manifest(self) -> None:
        path = self.dir / MANIFEST
        if path.exists():
            try:
                manifest = json.loads(path.read_text())
                self.generation = int(manifest["generation"])
                stored_dim = int(manifest["dim"])
            except (ValueError, KeyError, TypeError, OSError):
                raise LibraryError(
                    f"the vector store manifest {path} is damaged; run `finder repair` "
                    "(the vectors are set aside and `finder index` embeds the photos again)"
                ) from None
            if stored_dim != self.dim:
                raise LibraryError(
                    f"the vector store {self.dir} holds {stored_dim}-d vectors, not {self.dim}-d"
                )
        else:
            if self.read_only:
                raise LibraryError(f"the vector store {self.dir} holds no vectors yet")
            if any(self.dir.glob("vectors-*.f16")):
                raise LibraryError(
                    f"the vector store manifest {path} is missing; run `finder repair` "
                    "(the vectors are set aside and `finder index` embeds the photos again)"
                )
            self.generation = 0
            for name in self.names().values():
                (self.dir / name).touch()
            self._write_manifest()

    def names(self, generation: int | None = None) -> dict[str, str]:
        g = self.generation if generation is None else generation
        return {
            "vec": f"vectors-{g}.f16",
            "ids": f"ids-{g}.i64",
            "dead": f"dead-{g}.i64",
            "sums": f"sums-{g}.i64",
        }

    def path(self, key: str) -> Path:
        return self.dir / self.names()[key]

    def _write_manifest(self) -> None:
        data = {"format": FORMAT, "dim": self.dim, "generation": self.generation}
        files.atomic_write(self.dir / MANIFEST, json.dumps(data).encode())

    def _remove_other_generations(self) -> None:
        """Files of older generations (a kill after the compaction switch) or of a newer one (a
        kill before it)."""
        for path in self.dir.iterdir():
            m = _FILE.fullmatch(path.name)
            if m and int(m.group(2)) != self.generation:
                path.unlink(missing_ok=True)

    def _load(self) -> None:
        # Read in the reverse order of writing, so that rows a running writer appends meanwhile
        # never look like damage: every record read has its ids, every id read its vector.
        sums = self._read_sums()
        ids = files.read_int64(self.path("ids"))
        vec_rows = files.size(self.path("vec")) // self.row_bytes
        n = min(vec_rows, len(ids))
        self.n = int(n)
        self._ids = np.zeros(max(1024, n), dtype=np.int64)
        self._ids[:n] = ids[:n]
        self._alive = np.zeros(len(self._ids), dtype=bool)
        self._alive[:n] = True
        self._check_sums(sums, ids, vec_rows)
        dead = files.read_int64(self.path("dead"))
        dead = dead[(dead >= 0) & (dead < n)]
        self._alive[dead] = False
        # An id written twice without the older row marked dead (killed in between): last wins.
        live = np.flatnonzero(self._alive[:n])
        rev = live[::-1]
        _, first_in_rev = np.unique(self._ids[rev], return_index=True)
        keep = np.zeros(len(live), dtype=bool)
        keep[len(live) - 1 - first_in_rev] = True
        dups = live[~keep]
        if len(dups):
            self._alive[dups] = False
            self._pending_dead.extend(dups.tolist())
            self.pending_dups += len(dups)
        self.dead_count = int(n - self._alive[:n].sum())
        self._rebuild_map()

    def _read_sums(self) -> np.ndarray:
        """The sums records (k, 4), up to the first that does not follow on from the last."""
        rec = files.read_int64(self.path("sums"), 4).reshape(-1, 4)
        ends = np.cumsum(rec[:, 1])
        starts = np.concatenate([[0], ends[:-1]])
        bad = np.flatnonzero((rec[:, 0] != starts) | (rec[:, 1] <= 0))
        return rec[: bad[0]] if len(bad) else rec

    def _check_sums(self, sums: np.ndarray, ids: np.ndarray, vec_rows: int) -> None:
        """Find damage (see the module docstring) and drop the rows it touches."""
        self._records = len(sums)  # whole records that follow on from each other
        covered = int(sums[-1, :2].sum()) if len(sums) else 0
        self.covered = min(covered, self.n)
        problems = []
        if len(ids) > vec_rows:
            problems.append(f"{self.names()['vec']} holds {vec_rows} rows, its ids {len(ids)}")
        elif covered > self.n:
            problems.append(f"{covered} rows were written, {self.n} remain")
        bad_rows = 0
        for start, count, _, crc in sums.tolist():
            end = start + count
            if end > len(ids):
                break
            if zlib.crc32(ids[start:end].tobytes()) != crc:
                self._alive[start : min(end, self.n)] = False
                bad_rows += count
        if bad_rows:
            problems.append(f"{bad_rows} ids fail their checksum")
        if problems:
            self.damage = "; ".join(problems)

    def check(self) -> list[str]:
        """Every problem found by reading the whole log: what open finds, and vectors that fail
        their checksum. Empty when all is well."""
        problems = [self.damage] if self.damage else []
        bad = sum(count for _, count in self._failing_records())
        if bad:
            problems.append(f"{bad} vectors fail their checksum")
        return problems

    def failing_rows(self) -> np.ndarray:
        """The rows (live or dead) of every append whose vectors fail their checksum (or are
        cut short): reads the whole vectors file."""
        parts = [np.arange(s, min(s + c, self.n)) for s, c in self._failing_records()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _failing_records(self) -> list[tuple[int, int]]:
        """(first row, count) of the sums records whose vectors fail their CRC."""
        out = []
        try:
            f = open(self.path("vec"), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return [(int(s), int(c)) for s, c, _, _ in self._read_sums().tolist()]
        with f:
            for start, count, crc, _ in self._read_sums().tolist():
                end = min(start + count, self.n)
                f.seek(start * self.row_bytes)
                left, got = max(0, end - start) * self.row_bytes, 0
                while left > 0:
                    block = f.read(min(left, 1 << 24))
                    if not block:
                        break
                    got = zlib.crc32(block, got)
                    left -= len(block)
                if end - start < count or left > 0 or got != crc:
                    out.append((int(start), int(count)))
        return out

    def _rebuild_map(self) -> None:
        live = np.flatnonzero(self._alive[: self.n])
        keys = self._ids[live]
        order = np.argsort(keys, kind="stable")
        self._map_keys = keys[order]
        self._map_rows = live[order]
        self._recent: dict[int, int] = {}

    # -- writing ---------------------------------------------------------------------------------
    def writable(self) -> dict[str, int]:
        """Open the raw files for appending; cut a partial last row left by a crash and write the
        duplicate rows found at open to the dead log."""
        if self.closed:
            raise LibraryError(f"the vector store {self.dir} is closed")
        if self.read_only:
            raise LibraryError(f"the vector store {self.dir} is open read-only")
        if self._fds is None:
            fds = {}
            try:
                for key in KEYS:
                    fds[key] = os.open(self.path(key), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                for fd in fds.values():
                    os.close(fd)
                raise LibraryError(
                    f"cannot write the vector store {self.dir}: {e.strerror}"
                ) from None
            os.ftruncate(fds["vec"], self.n * self.row_bytes)
            os.ftruncate(fds["ids"], self.n * 8)
            dead_size = os.fstat(fds["dead"]).st_size
            if dead_size % 8:
                os.ftruncate(fds["dead"], dead_size - dead_size % 8)
            os.ftruncate(fds["sums"], self._records * 32)
            self._fds = fds
            if self.covered < self.n:  # rows a kill (or an older finder) left without a record
                for start in range(self.covered, self.n, CHUNK):
                    rows = np.arange(start, min(start + CHUNK, self.n))
                    vec, ids = _bytes_of(self.read_rows(rows)), _bytes_of(self._ids[rows])
                    self._write_sums(start, vec, ids)
        if self._pending_dead:
            rows = np.asarray(self._pending_dead, dtype=np.int64)
            files.write_all(self._fds["dead"], rows.tobytes())
            self._pending_dead = []
        return self._fds

    def _write_sums(self, start: int, vec_bytes: memoryview, id_bytes: memoryview) -> None:
        """Record the CRCs of the rows from ``start`` (the log's last rows so far), as bytes."""
        assert self._fds is not None
        count = len(id_bytes) // 8
        crcs = (zlib.crc32(vec_bytes), zlib.crc32(id_bytes))
        record = np.array([[start, count, *crcs]], dtype=np.int64)
        files.write_all(self._fds["sums"], record.tobytes())
        self._records += 1
        self.covered = start + count

    @property
    def has_pending(self) -> bool:
        """Whether the files are open for writing or repairs found at open are unwritten."""
        return self._fds is not None or bool(self._pending_dead)

    def _grow(self, extra: int) -> None:
        need = self.n + extra
        if need > len(self._ids):
            cap = max(need, 2 * len(self._ids))
            ids = np.zeros(cap, dtype=np.int64)
            ids[: self.n] = self._ids[: self.n]
            alive = np.zeros(cap, dtype=bool)
            alive[: self.n] = self._alive[: self.n]
            self._ids, self._alive = ids, alive

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where the id has no live vector."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = np.full(len(ids), -1, dtype=np.int64)
        if len(self._map_keys) and len(ids):
            pos = np.searchsorted(self._map_keys, ids)
            pos_c = np.minimum(pos, len(self._map_keys) - 1)
            hit = self._map_keys[pos_c] == ids
            rows[hit] = self._map_rows[pos_c[hit]]
        if self._recent:
            for i, key in enumerate(ids.tolist()):
                row = self._recent.get(key)
                if row is not None:
                    rows[i] = row
        ok = rows >= 0
        ok[ok] = self._alive[rows[ok]] & (self._ids[rows[ok]] == ids[ok])
        rows[~ok] = -1
        return rows

    def append(self, ids: np.ndarray, v16: np.ndarray) -> np.ndarray:
        """Append float16 rows of distinct ids; an id already present is replaced. Returns the
        ids that were replaced."""
        fds = self.writable()
        old_rows = self.lookup(ids)
        vec_bytes, id_bytes = _bytes_of(v16), _bytes_of(ids)
        files.write_all(fds["vec"], vec_bytes)
        files.write_all(fds["ids"], id_bytes)
        start = self.n
        self._grow(len(ids))
        self._ids[start : start + len(ids)] = ids
        self._alive[start : start + len(ids)] = True
        self.n += len(ids)
        self._write_sums(start, vec_bytes, id_bytes)
        replaced = old_rows[old_rows >= 0]
        if len(replaced):
            self._alive[replaced] = False
            self.dead_count += len(replaced)
            files.write_all(fds["dead"], replaced.astype(np.int64).tobytes())
        for k, key in enumerate(ids.tolist()):
            self._recent[key] = start + k
        if len(self._recent) > max(65536, len(self._map_keys) // 4):
            self._rebuild_map()
        return self._ids[replaced]

    def remove(self, ids: np.ndarray) -> np.ndarray:
        """Tombstone these ids' rows; returns the ids that had a live row."""
        rows = self.lookup(np.unique(np.asarray(ids, dtype=np.int64).reshape(-1)))
        rows = rows[rows >= 0]
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        fds = self.writable()
        files.write_all(fds["dead"], rows.astype(np.int64).tobytes())
        self._alive[rows] = False
        self.dead_count += len(rows)
        gone = self._ids[rows]
        for key in gone.tolist():
            self._recent.pop(key, None)
        return gone

    def commit(self) -> None:
        """Make every append and remove so far durable (fsync the raw files)."""
        if self._fds is not None:
            for fd in self._fds.values():
                os.fsync(fd)

    def write_repairs(self) -> None:
        """Write the duplicate rows found at open to the dead log, if any."""
        if self._pending_dead:
            self.writable()

    def take_dups(self) -> int:
        """Duplicate rows found at open (written to the dead log now), counted once."""
        self.write_repairs()
        dups, self.pending_dups = self.pending_dups, 0
        return dups

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.n - self.dead_count)

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(self._alive[: self.n])

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        return self._ids[rows]

    def ids(self) -> np.ndarray:
        """Live ids, in the order their vectors were stored."""
        return self._ids[: self.n][self._alive[: self.n]].copy()

    def alive(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Liveness of rows [start, stop) (a view)."""
        return self._alive[start : self.n if stop is None else stop]

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """float16 rows from the raw file (rows in any order). The file is mapped for this call
        only, so its pages do not stay in the process's resident set."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float16)
        raw = np.memmap(self.path("vec"), dtype=np.float16, mode="r", shape=(self.n, self.dim))
        try:
            return np.asarray(raw[rows])
        finally:
            del raw

    def span(self, start: int, stop: int) -> np.ndarray:
        """float16 rows ``[start, stop)`` of the raw file as a view of its mapping, not a copy
        (the mapping lives as long as the view: drop it once read). A scan of most rows reads
        them so, in place: a copy of 4,096 rows picked one by one costs twice what scoring them
        does (100,000 rows at 4,096-d: 0.9 s of CPU read by :meth:`read_rows`, 0.26 s so)."""
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n:
            raise IndexError(f"rows [{start}, {stop}) are not in the raw file's {self.n}")
        if start == stop:
            return np.zeros((0, self.dim), dtype=np.float16)
        raw = np.memmap(self.path("vec"), dtype=np.float16, mode="r", shape=(self.n, self.dim))
        return raw[start:stop]

    def scan(self, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (rows, float16 vectors) in chunks of the raw file."""
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            yield chunk, self.read_rows(chunk)

    def nbytes(self) -> int:
        """Memory held for the rows' ids, liveness and id lookup."""
        return self._ids.nbytes + self._alive.nbytes + self._map_keys.nbytes + self._map_rows.nbytes

    # -- compaction ------------------------------------------------------------------------------
    def wants_compaction(self, fraction: float, minimum: int) -> bool:
        dead = self.dead_count
        return dead >= minimum and dead >= fraction * max(self.n, 1)

    def compact(self) -> None:
        """Rewrite the live rows into the next generation's files; the manifest is the switch."""
        self.commit()
        rows = self.live_rows()
        new_ids = self._ids[rows].copy()
        names = self.names(self.generation + 1)
        sums = []
        with open(self.dir / names["vec"], "wb") as fv:
            for k, (_, x) in enumerate(self.scan(rows)):
                fv.write(x.tobytes())
                for at in range(0, len(x), SUM_ROWS):  # a damaged row costs its 64 neighbours
                    v = x[at : at + SUM_ROWS]
                    first = k * CHUNK + at
                    part = new_ids[first : first + len(v)]
                    sums.append(
                        (first, len(v), zlib.crc32(v.tobytes()), zlib.crc32(part.tobytes()))
                    )
        for key, data in (
            ("ids", new_ids),
            ("sums", np.array(sums, dtype=np.int64)),
            ("dead", b""),
        ):
            with open(self.dir / names[key], "wb") as f:
                f.write(data if isinstance(data, bytes) else data.tobytes())
        for key in ("vec", "ids", "sums", "dead"):
            files.fsync_file(self.dir / names[key])
        files.fsync_dir(self.dir)
        old = self.names()
        self._close_fds()
        self.generation += 1
        self._write_manifest()  # the commit point
        for name in old.values():
            (self.dir / name).unlink(missing_ok=True)
        n = len(rows)
        self.n = self.covered = n
        self._records = len(sums)
        self._pending_dead = []  # rows of the old generation: not copied
        self._ids = np.zeros(max(1024, n), dtype=np.int64)
        self._ids[:n] = new_ids
        self._alive = np.zeros(len(self._ids), dtype=bool)
        self._alive[:n] = True
        self.dead_count = 0
        self._rebuild_map()

    def _close_fds(self) -> None:
        if self._fds is not None:
            for fd in self._fds.values():
                os.close(fd)
            self._fds = None

    def close(self) -> None:
        self._close_fds()
        self.closed = True
