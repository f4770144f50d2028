"""The teaching journal's file: records round-trip, a torn or damaged record is found and the
journal read up to it, compaction keeps the state, a void change is dropped. Real files."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from finder.errors import LibraryError
from finder.store import journal as jr
from finder.store.journal import ClassState, Example, Journal, State

T0 = time.time() - 3600  # an hour ago: within the 30 days forgotten classes are kept


def vector(seed: int, dim: int = 8, exact16: bool = True) -> bytes:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    v /= np.linalg.norm(v)
    if exact16:
        v = v.astype(np.float16).astype(np.float32)
    return v.astype("<f4").tobytes()


def learn_record(seq: int, name: str, examples: list[tuple[str, int]], added: dict) -> dict:
    return {
        "seq": seq,
        "t": T0 + seq,
        "op": "learn",
        "class": name,
        "head": {"w": f"head-{seq}", "threshold": 0.4},
        "backbone": "bb",
        "n_pos": sum(label for _, label in examples),
        "n_neg": sum(1 - label for _, label in examples),
        "created": T0,
        "updated": T0 + seq,
        "examples": [[jr.encode_path(p), label] for p, label in examples],
        "vectors": [
            jr.example_to_json(Example(p, label, vec, f"fp-{Path(p).stem}", 10, T0 + seq))
            for p, (label, vec) in added.items()
        ],
    }


def some_changes(journal: Journal) -> None:
    """Five changes: index, learn cat (2 ✓), a ✗ and a ✓ more, a mark taken back, forget dog."""
    journal.append(
        {
            "seq": 1,
            "t": 1.0,
            "op": "index",
            "roots": [{"path": "/photos", "hidden": True, "exclude": ["*.tmp"]}],
            "backbone": {"name": "tiny", "dim": 8},
            "memory_budget": None,
        }
    )
    a, b, c, d = "/photos/a.jpg", "/photos/b.jpg", "/photos/c.jpg", "/photos/d.jpg"
    journal.append(
        learn_record(2, "cat", [(a, 1), (b, 1)], {a: (1, vector(1)), b: (1, vector(2, 8, False))})
    )
    journal.append(learn_record(3, "dog", [(c, 1)], {c: (1, vector(3))}))
    journal.append(
        learn_record(
            4, "cat", [(a, 1), (b, 1), (c, 0), (d, 1)], {c: (0, vector(3)), d: (1, vector(4))}
        )
    )
    journal.append(learn_record(5, "cat", [(a, 1), (c, 0), (d, 1)], {}))  # b taken back
    journal.append({"seq": 6, "t": T0 + 6, "op": "forget", "class": "dog"})


def test_records_round_trip_into_the_state(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    replay = journal.replay()
    assert replay.complete and replay.records == 6 and replay.last_seq == 6
    state = replay.state
    assert state.seq == 6 and list(state.classes) == ["cat"]
    cat = state.classes["cat"]
    assert [(e.path, e.label) for e in cat.examples.values()] == [
        ("/photos/a.jpg", 1),
        ("/photos/c.jpg", 0),
        ("/photos/d.jpg", 1),
    ]
    assert cat.examples["/photos/a.jpg"].vector == vector(1)  # kept from the first record
    assert cat.examples["/photos/c.jpg"].fingerprint == "fp-c"
    assert cat.head == {"w": "head-5", "threshold": 0.4}
    assert [f.cls.name for f in state.forgotten] == ["dog"] and "dog" in state.retired
    assert state.roots["/photos"] == jr.Root("/photos", True, ["*.tmp"])
    assert state.backbone == {"name": "tiny", "dim": 8}
    # a state up to a change number: the catalog's view after change 3
    early = journal.replay(upto=3).state
    assert set(early.classes) == {"cat", "dog"} and len(early.classes["cat"].examples) == 2


def test_each_line_is_a_checksum_and_json(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    lines = journal.path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 7
    for line in lines:
        crc, body = line.split(b" ", 1)
        assert int(crc, 16) == zlib.crc32(body)
    assert b'"op":"forget","class":"dog"' in lines[-1]  # greppable


def test_vectors_float32_exactly_and_float16_when_it_is_exact() -> None:
    for data, kind in ((vector(1), "f2"), (vector(2, 8, False), "f4")):
        entry = jr.encode_vector(data)
        assert entry["dt"] == kind and jr.decode_vector(entry) == data


def test_paths_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    odd = os.fsdecode(b"/photos/caf\xe9-\xff.jpg")
    journal = Journal(tmp_path / jr.JOURNAL)
    journal.append(learn_record(1, "odd", [(odd, 1)], {odd: (1, vector(1))}))
    assert b'"b64"' in journal.path.read_bytes()
    assert list(journal.replay().state.classes["odd"].examples) == [odd]


def test_a_torn_last_record_loses_only_that_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    whole = journal.path.read_bytes()
    last = whole.rstrip(b"\n").rfind(b"\n") + 1
    for cut in (last + 1, last + 9, last + 40, len(whole) - 1):  # killed mid-append
        journal.path.write_bytes(whole[:cut])
        replay = journal.replay()
        assert replay.torn and replay.problem is None and replay.complete
        assert replay.last_seq == 5
        assert [f.cls.name for f in replay.state.forgotten] == []
        assert set(replay.state.classes) == {"cat", "dog"}
    # the next append cuts the torn line off and goes on
    journal.append({"seq": 6, "t": 7.0, "op": "forget", "class": "cat"})
    replay = journal.replay()
    assert replay.complete and not replay.torn and set(replay.state.classes) == {"dog"}
    assert journal.path.read_bytes().count(b"\n") == 7


def test_a_damaged_record_stops_the_reading_there_never_a_crash(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    data = bytearray(journal.path.read_bytes())
    starts = [0] + [k + 1 for k, b in enumerate(data) if b == ord("\n")][:-1]
    data[starts[3] + 30] ^= 0x20  # one bit in the third change (learn dog)
    journal.path.write_bytes(bytes(data))
    replay = journal.replay()
    assert not replay.complete and replay.problem.startswith("record 4 (at byte")
    assert replay.records == 2 and list(replay.state.classes) == ["cat"]
    for garbage in (b"", b"\x00" * 100, os.urandom(5000), b"12345678 {not json}\n"):
        journal.path.write_bytes(garbage)
        assert journal.replay().state.classes == {}  # read, never raised


def test_a_change_numbered_again_voids_the_earlier_one(tmp_path: Path) -> None:
    """A command killed after its record was written and before the catalog took the change:
    the next change gets the same number, and the first never happened."""
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    journal.append({"seq": 7, "t": 7.0, "op": "forget", "class": "cat"})  # killed before commit
    journal.append({"seq": 7, "t": 8.0, "op": "rename", "class": "cat", "to": "kitten"})
    state = journal.replay().state
    assert list(state.classes) == ["kitten"] and state.seq == 7
    assert [f.cls.name for f in state.forgotten] == ["dog"]


def test_rename_and_restore(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    journal.append({"seq": 7, "t": 7.0, "op": "restore", "class": "dog"})
    journal.append({"seq": 8, "t": 8.0, "op": "rename", "class": "dog", "to": "puppy"})
    state = journal.replay().state
    assert set(state.classes) == {"cat", "puppy"} and state.forgotten == []
    assert state.classes["puppy"].examples["/photos/c.jpg"].vector == vector(3)
    assert "dog" in state.retired and "puppy" not in state.retired


def test_compaction_keeps_the_state_and_shrinks_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)
    for k in range(7, 60):  # a long run of marks on cat
        journal.append(
            learn_record(
                k,
                "cat",
                [("/photos/a.jpg", 1), (f"/photos/m{k}.jpg", k % 2)],
                {f"/photos/m{k}.jpg": (k % 2, vector(k))},
            )
        )
    before = journal.replay().state
    size = journal.size()
    journal.compact(before)
    after = journal.replay()
    assert after.complete and journal.size() < size / 5
    assert after.state == before
    journal.append({"seq": 60, "t": 60.0, "op": "forget", "class": "cat"})  # goes on after it
    assert set(journal.replay().state.classes) == set()
    assert not list(tmp_path.glob("*.tmp"))


def test_compaction_drops_classes_forgotten_long_ago(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    some_changes(journal)  # dog forgotten an hour ago
    state = journal.replay().state
    state.forgotten.append(jr.Forgotten(T0 - 31 * 24 * 3600, state.classes["cat"]))  # 31 days
    journal.compact(state)
    assert [f.cls.name for f in journal.replay().state.forgotten] == ["dog"]


def test_writer_compacts_past_its_threshold(tmp_path: Path) -> None:
    journal = Journal(tmp_path / jr.JOURNAL)
    journal.append({"seq": 1, "t": 1.0, "op": "index", "roots": [], "backbone": None})
    with journal.locked() as writer:
        assert not writer.wants_compaction()
        writer.tail.size = jr.COMPACT_MIN_BYTES + 1
        assert writer.wants_compaction()


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / jr.JOURNAL
    path.write_bytes(jr.encode_line({"journal": jr.MAGIC, "format": 99}))
    journal = Journal(path)
    assert "newer finder" in journal.replay().problem
    with pytest.raises(LibraryError, match="newer finder"):
        journal.append({"seq": 1, "op": "forget", "class": "x"})


def test_state_records_replay_to_the_same_state() -> None:
    cls = ClassState("cat", {"w": "x"}, "bb", 1, 0, 1.0, 2.0, {})
    cls.examples["/a.jpg"] = Example("/a.jpg", 1, vector(9), "fp", 3, 1.5)
    state = State(seq=4, classes={"cat": cls}, roots={"/r": jr.Root("/r")}, backbone={"d": 1})
    again = jr.replay_bytes(
        jr.encode_line({"journal": jr.MAGIC, "format": 1})
        + b"".join(jr.encode_line(r) for r in jr.state_records(state))
    )
    assert again.complete and again.state == state
