"""The teaching journal: every change a person taught, in a file of its own, append-only.

    journal = Journal(library / JOURNAL)
    journal.append({"seq": 8, "op": "forget", "class": "cat"})   # fsynced before it returns
    replay = journal.replay()            # .state: classes, examples, marks, roots; .problem
    journal.compact(replay.state)        # rewritten atomically as the minimal record

Classes, examples and ✓ / ✗ marks are minutes of a person's attention each; photos and vectors
can always be computed again, teaching cannot. So every teaching change is written here before
the command (or click) that made it returns, and the journal survives the loss of the catalog,
its ``-wal``/``-shm`` files and its backups together: ``finder repair`` replays it onto whatever
catalog it restores (:mod:`finder.store.teaching` ties the two together).

The file (format 1) is text, one record a line, greppable::

    1f0c93a2 {"journal":"finder teaching","format":1,"t":1733500000.1}
    5be0aa41 {"seq":1,"t":...,"op":"index","roots":[{"path":"/photos","hidden":false,...}],...}
    0a9e1c7d {"seq":2,"t":...,"op":"learn","class":"cat","head":{...},"examples":[...],...}

Each line is the CRC-32 (8 hex digits) of the JSON that follows it, a space, the JSON (UTF-8,
no newline inside) and a newline. Reading stops at the first line that is cut short or fails its
checksum (:attr:`Replay.problem` says where; nothing after it is trusted); a last line cut short
is what a kill in the middle of an append leaves, is not damage, and is cut off before the next
append. The first line is the header (``format``: a newer format is refused).

Records (``op``), each with ``seq`` (its change number) and ``t`` (when):

* ``learn``: class ``class`` after the change: ``head`` (the head's JSON, its cut-off and
  settings), ``backbone``, ``n_pos``, ``n_neg``, ``created``, ``updated``; ``examples``, every
  example and counter-example now in it as ``[path, label]`` in the order taught (so a mark taken
  back is simply absent), with a third item, the mark's ``origin`` (:mod:`finder.learn.origin`:
  "example", "top", "strip", "random"), when it is known; ``vectors``, for those added or
  relabelled by this change, their vector bytes as the catalog keeps them (float32, base64;
  ``"dt": "f2"`` when float16 holds them exactly), content ``fp``
  (:func:`finder.ingest.crawl.fingerprint`) and ``size``.
* ``forget``: class ``class`` is forgotten; its state is kept (``State.forgotten``) so that it
  can be restored.
* ``rename``: class ``class`` is now named ``to``. ``restore``: the newest forgotten class named
  ``class`` (forgotten at ``at`` when given) is back.
* ``index``: ``roots`` indexed (``path``, ``hidden``, ``exclude``), the ``backbone`` record and
  the ``memory_budget`` of the library.

A compacted journal starts with the state itself: ``class`` and ``forgotten`` records (no
``seq``), one ``library`` record (roots, backbone, budget), then ``snapshot`` with the ``seq``
of the last change the state holds.

``seq`` numbers the changes; the catalog keeps the number of the last one it holds
(``meta.journal_seq``, written in the same transaction). A record is appended (and fsynced)
before that transaction commits, so a kill in between leaves the journal one change ahead:
the next change is then given the same number, and a record followed by another of the same
or a lower number is void (:meth:`Journal.replay` drops it), as the change it recorded never
happened.

Paths are JSON strings when they are valid UTF-8, else ``{"b64": ...}`` of their bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finder.errors import LibraryError
from finder.store import files
from finder.store.journal_state import (
    KEEP_FORGOTTEN,
    ClassState,
    Example,
    Forgotten,
    Root,
    State,
    apply_record,
    class_fields,
    class_to_json,
    decode_path,
    decode_vector,
    encode_path,
    encode_vector,
    example_entry,
    example_to_json,
    root_to_json,
    state_records,
)

# The state and its records live in journal_state; the journal's users take them from here too.
__all__ = [
    "JOURNAL",
    "KEEP_FORGOTTEN",
    "ClassState",
    "Example",
    "Forgotten",
    "Journal",
    "Replay",
    "Root",
    "State",
    "apply_record",
    "class_fields",
    "class_to_json",
    "decode_path",
    "decode_vector",
    "encode_line",
    "encode_path",
    "encode_vector",
    "example_entry",
    "example_to_json",
    "replay_bytes",
    "root_to_json",
    "state_records",
]

JOURNAL = "teaching.log"
"""The journal's file name in the library folder."""
FORMAT = 1
MAGIC = "finder teaching"
#: Compact when the file has grown past this many times its size after the last compaction...
COMPACT_FACTOR = 4
#: ... and past this many bytes.
COMPACT_MIN_BYTES = 1 << 20
_BLOCK = 1 << 16

try:  # a lock on the file itself: appends and compactions from several processes, one at a time
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: one writer at a time by the library lock
    fcntl = None  # type: ignore[assignment]


@dataclass
class Replay:
    """What reading the journal gave: the state, and how far the file could be trusted."""

    state: State
    exists: bool = False
    records: int = 0  # records applied
    last_seq: int = 0  # the number of the last change read (void ones included)
    problem: str | None = None  # what stopped the reading (damage); None: read to the end
    torn: bool = False  # the last line was cut short (a kill in the middle of an append)
    unknown: int = 0  # records of an op this finder does not know (skipped)

    @property
    def complete(self) -> bool:
        """Read to its end (a torn last line, a kill's trace, is not damage)."""
        return self.exists and self.problem is None


def encode_line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:  # a name with undecodable bytes: escaped, it still round-trips
        data = json.dumps(record, separators=(",", ":"), allow_nan=False).encode("ascii")
    return b"%08x " % zlib.crc32(data) + data + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The record of one line (without its newline), None when it fails its checksum."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    data = line[9:]
    if zlib.crc32(data) != crc:
        return None
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


# ------------------------------------------------------------------------------ the file
@dataclass
class Tail:
    """The end of the journal as an appender sees it."""

    existed: bool  # the file held a header
    last_seq: int = 0  # the number of the last change (0: none yet)
    last_op: str | None = None
    problem: str | None = None  # the header or the last record is damaged
    base: int = 0  # the file's size after its last compaction (the header says)
    size: int = 0


class Writer:
    """The journal open for appending, locked against other writers (see ``Journal.locked``)."""

    def __init__(self, journal: Journal, fd: int, tail: Tail) -> None:
        self.journal = journal
        self.fd = fd
        self.tail = tail

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and make it durable (fsync)."""
        line = encode_line(record)
        try:
            files.write_all(self.fd, line)
            os.fsync(self.fd)
        except OSError as e:  # a full disk: the torn line is cut off by the next append
            raise self.journal.unwritable(e) from None
        self.tail.size += len(line)
        if "seq" in record:
            self.tail.last_seq = int(record["seq"])
        self.tail.last_op = record.get("op")

    def wants_compaction(self) -> bool:
        t = self.tail
        return t.size > max(COMPACT_MIN_BYTES, COMPACT_FACTOR * max(t.base, 1))

    def rewrite(self, state: State) -> None:
        """Replace the journal by the minimal record of ``state`` (atomically); this writer
        then appends to the new file, still holding the lock."""
        fd = self.journal._write_compacted(state)
        os.close(self.fd)
        self.fd = fd
        self.tail = self.journal._read_tail(fd)


class Journal:
    """The teaching journal file at ``path`` (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # -- writing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[Writer]:
        """The journal open for appending under an exclusive lock (a new file gets its
        header; a last line cut short by a kill is cut off)."""
        fd = self._open_locked()
        writer = Writer(self, fd, Tail(existed=False))
        try:
            tail = self._read_tail(fd)
            if not tail.existed:
                header = encode_line({"journal": MAGIC, "format": FORMAT, "t": time.time()})
                try:
                    os.ftruncate(fd, 0)
                    files.write_all(fd, header)
                    os.fsync(fd)
                except OSError as e:
                    raise self.unwritable(e) from None
                files.fsync_dir(self.path.parent)
                tail = Tail(existed=False, size=len(header), base=len(header))
            writer.tail = tail
            yield writer
        finally:
            os.close(writer.fd)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record, durable when this returns."""
        with self.locked() as writer:
            writer.append(record)

    def compact(self, state: State) -> None:
        """Rewrite the journal atomically as the minimal record of ``state``."""
        with self.locked() as writer:
            writer.rewrite(state)

    def _open_locked(self) -> int:
        """An fd of the journal file, locked; reopened when a compaction replaced the file
        while this process waited for the lock."""
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                raise self.unwritable(e) from None
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)
        raise LibraryError(f"cannot lock the teaching journal {self.path}")  # pragma: no cover

    def _read_tail(self, fd: int) -> Tail:
        """Header and last record; a last line cut short is cut off the file (the append it
        belonged to never returned)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return Tail(existed=False)
        first = os.pread(fd, min(size, 4096), 0)
        nl = first.find(b"\n")
        header = decode_line(first[:nl]) if nl >= 0 else None
        if header is None or header.get("journal") != MAGIC:
            if nl < 0 and size < 4096:  # only a torn header: a kill while creating the file
                return Tail(existed=False)
            return Tail(existed=True, problem="its header is damaged", size=size)
        if _format(header) > FORMAT:
            raise LibraryError(
                f"the teaching journal {self.path} was written by a newer finder; upgrade finder"
            )
        base = header.get("base", nl + 1)
        base = base if isinstance(base, int) else nl + 1
        end = _last_newline(fd, size) + 1
        if end < size:  # a torn last line
            os.ftruncate(fd, end)
            os.fsync(fd)
            size = end
        tail = Tail(existed=True, base=base, size=size)
        if end == nl + 1:
            return tail  # the header alone
        start = _last_newline(fd, end - 1) + 1
        record = decode_line(os.pread(fd, end - 1 - start, start))
        if record is None:
            tail.problem = f"its last record (at byte {start}) is damaged"
            return tail
        tail.last_op = record.get("op")
        try:
            tail.last_seq = int(record["seq"]) if "seq" in record else 0
        except (TypeError, ValueError):
            tail.problem = f"its last record (at byte {start}) is damaged"
        return tail

    def _write_compacted(self, state: State) -> int:
        """Write ``state`` as a new journal beside, locked, and switch to it; returns its fd."""
        body = b"".join(encode_line(r) for r in state_records(state))
        header = {"journal": MAGIC, "format": FORMAT, "t": time.time(), "base": len(body)}
        data = encode_line(header) + body
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            files.write_all(fd, data)
            os.fsync(fd)
            os.replace(tmp, self.path)
            files.fsync_dir(self.path.parent)
        except BaseException as e:
            os.close(fd)
            if isinstance(e, OSError):
                tmp.unlink(missing_ok=True)
                raise self.unwritable(e) from None
            raise
        return fd

    def unwritable(self, e: OSError) -> LibraryError:
        return LibraryError(f"cannot write the teaching journal {self.path}: {e.strerror or e}")

    # -- reading ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def size(self) -> int:
        return files.size(self.path)

    def replay(self, upto: int | None = None) -> Replay:
        """The state the journal records (only the changes numbered up to ``upto``, when
        given), read up to the first damaged record. Never raises for a damaged file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Replay(State())
        except OSError as e:
            return Replay(State(), exists=True, problem=f"unreadable ({e.strerror})")
        return replay_bytes(data, upto)


def replay_bytes(data: bytes, upto: int | None = None) -> Replay:
    """:meth:`Journal.replay` of a journal's bytes."""
    out = Replay(State(), exists=True)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # a last line without its newline: an append a kill cut short
        out.torn = True
    if not lines:  # nothing whole yet: a kill while the file was made
        return out
    header = decode_line(lines[0])
    if header is None or header.get("journal") != MAGIC:
        out.problem = "its header is damaged"
        return out
    if _format(header) > FORMAT:
        out.problem = f"it was written by a newer finder (format {header.get('format')})"
        return out
    kept: list[dict[str, Any]] = []
    offset = len(lines[0]) + 1
    for k, line in enumerate(lines[1:], start=2):
        record = decode_line(line)
        if record is None or not isinstance(record.get("seq", 0), int):
            out.problem = f"record {k} (at byte {offset}) is damaged"
            break
        offset += len(line) + 1
        if "seq" in record:
            seq = record["seq"]
            out.last_seq = seq
            # a change numbered like an earlier one: the earlier ones from that number on
            # never happened (their command was killed before the catalog took them)
            while kept and kept[-1].get("op") != "snapshot" and kept[-1].get("seq", -1) >= seq:
                kept.pop()
        kept.append(record)
    state = out.state
    for record in kept:
        if upto is not None and record.get("seq", 0) > upto:
            break
        try:
            if apply_record(state, record):
                out.records += 1
            else:
                out.unknown += 1
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            out.problem = f"record of change {record.get('seq')} is malformed ({e})"
            break
    return out


def _last_newline(fd: int, end: int) -> int:
    """The offset of the last newline before ``end`` (-1: none)."""
    pos = end
    while pos > 0:
        start = max(0, pos - _BLOCK)
        block = os.pread(fd, pos - start, start)
        k = block.rfind(b"\n")
        if k >= 0:
            return start + k
        pos = start
    return -1


def _format(header: dict[str, Any]) -> int:
    value = header.get("format", 0)
    return value if isinstance(value, int) else FORMAT + 1
