"""What the teaching journal records (:mod:`finder.store.journal` is the file): the state it
describes (classes with their examples and marks in the order taught, forgotten classes, the
roots indexed, the backbone), the JSON of its records, and how each record changes the state.

    state = State()
    apply_record(state, {"seq": 3, "op": "forget", "class": "cat", "t": ...})
    records = state_records(state)   # a compacted journal's records

The records (``op``) are described in :mod:`finder.store.journal`.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Forgotten classes are kept (restorable) this long; compaction drops older ones.
KEEP_FORGOTTEN = 30 * 24 * 3600.0


# ------------------------------------------------------------------------------ the state
@dataclass
class Example:
    """One example (label 1) or counter-example (label 0) of a class."""

    path: str
    label: int
    vector: bytes | None  # float32 bytes, as the catalog keeps them; None: not recorded
    fingerprint: str | None = None
    size: int | None = None
    added: float = 0.0
    origin: str | None = None  # where the mark comes from (finder.learn.origin); None: not known


@dataclass
class ClassState:
    """A class as taught: its head's record and its examples in the order taught."""

    name: str
    head: dict[str, Any]
    backbone: str
    n_pos: int
    n_neg: int
    created: float
    updated: float
    examples: dict[str, Example] = field(default_factory=dict)  # by path


@dataclass
class Forgotten:
    at: float
    cls: ClassState


@dataclass
class Root:
    path: str
    hidden: bool = False
    exclude: list[str] = field(default_factory=list)


@dataclass
class State:
    """What the journal says was taught (and indexed) up to change ``seq``."""

    seq: int = 0
    classes: dict[str, ClassState] = field(default_factory=dict)
    forgotten: list[Forgotten] = field(default_factory=list)
    retired: dict[str, float] = field(default_factory=dict)  # name -> when it was forgotten/renamed
    roots: dict[str, Root] = field(default_factory=dict)
    backbone: dict[str, Any] | None = None
    memory_budget: int | None = None


# ------------------------------------------------------------------------------ encoding
def encode_path(path: str) -> str | dict[str, str]:
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode("ascii")}


def decode_path(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        return os.fsdecode(base64.b64decode(value["b64"], validate=True))
    raise ValueError(f"not a path: {value!r}")


def encode_vector(data: bytes) -> dict[str, str]:
    """float32 bytes as base64, as float16 when that holds every value exactly."""
    v32 = np.frombuffer(data, dtype="<f4")
    with np.errstate(over="ignore"):
        v16 = v32.astype("<f2")
    if len(data) % 4 == 0 and np.array_equal(v16.astype("<f4"), v32, equal_nan=True):
        return {"vec": base64.b64encode(v16.tobytes()).decode("ascii"), "dt": "f2"}
    return {"vec": base64.b64encode(data).decode("ascii"), "dt": "f4"}


def decode_vector(entry: dict[str, Any]) -> bytes:
    raw = base64.b64decode(entry["vec"], validate=True)
    if entry.get("dt") == "f2":
        return np.frombuffer(raw, dtype="<f2").astype("<f4").tobytes()
    if entry.get("dt", "f4") != "f4" or len(raw) % 4:
        raise ValueError("a vector of an unknown kind")
    return raw


def class_fields(cls: ClassState) -> dict[str, Any]:
    """The fields of a class record (``Catalog.put_class``), without its examples."""
    return {
        "name": cls.name,
        "head": cls.head,
        "backbone": cls.backbone,
        "n_pos": cls.n_pos,
        "n_neg": cls.n_neg,
        "created": cls.created,
        "updated": cls.updated,
    }


def class_to_json(cls: ClassState, with_vectors: bool = True) -> dict[str, Any]:
    fields = class_fields(cls)
    out: dict[str, Any] = {
        "class": fields.pop("name"),
        **fields,
        "examples": [example_entry(e.path, e.label, e.origin) for e in cls.examples.values()],
    }
    if with_vectors:
        out["vectors"] = [example_to_json(e) for e in cls.examples.values() if e.vector]
    return out


def example_entry(path: str, label: int, origin: str | None) -> list[Any]:
    """An example as a record's ``examples`` list holds it: ``[path, label]``, and its origin
    third when it is known (a journal from before origins reads as not known)."""
    return [encode_path(path), label] if origin is None else [encode_path(path), label, origin]


def example_to_json(e: Example) -> dict[str, Any]:
    out: dict[str, Any] = {"path": encode_path(e.path), "added": e.added}
    if e.fingerprint:
        out["fp"] = e.fingerprint
    if e.size is not None:
        out["size"] = e.size
    if e.vector is not None:
        out.update(encode_vector(e.vector))
    return out


def _class_from_json(rec: dict[str, Any], before: ClassState | None) -> ClassState:
    """The class a ``learn`` (or ``class``) record describes; examples it lists without a
    vector keep the one ``before`` had."""
    vectors = {}
    for v in rec.get("vectors", []):
        path = decode_path(v["path"])
        vectors[path] = (
            decode_vector(v) if "vec" in v else None,
            v.get("fp"),
            v.get("size"),
            float(v.get("added", rec.get("updated", 0.0))),
        )
    old = before.examples if before is not None else {}
    examples: dict[str, Example] = {}
    for entry in rec["examples"]:
        path, label = decode_path(entry[0]), int(entry[1])
        if label not in (0, 1):
            raise ValueError(f"a label of {label}")
        origin = entry[2] if len(entry) > 2 else None
        if origin is not None and not isinstance(origin, str):
            raise ValueError(f"an origin of {origin!r}")
        if path in vectors:
            vec, fp, size, added = vectors[path]
            examples[path] = Example(path, label, vec, fp, size, added, origin)
        elif path in old:
            o = old[path]
            examples[path] = Example(path, label, o.vector, o.fingerprint, o.size, o.added, origin)
        else:  # recorded in a part of the journal that is lost
            examples[path] = Example(path, label, None, origin=origin)
    head = rec["head"]
    if not isinstance(head, dict):
        raise ValueError("a head that is not an object")
    return ClassState(
        name=str(rec["class"]),
        head=head,
        backbone=str(rec["backbone"]),
        n_pos=int(rec["n_pos"]),
        n_neg=int(rec["n_neg"]),
        created=float(rec.get("created", rec.get("t", 0.0))),
        updated=float(rec.get("updated", rec.get("t", 0.0))),
        examples=examples,
    )


def _roots_from_json(entries: list[dict[str, Any]]) -> list[Root]:
    return [
        Root(decode_path(r["path"]), bool(r.get("hidden", False)), list(r.get("exclude", [])))
        for r in entries
    ]


def root_to_json(root: Root) -> dict[str, Any]:
    return {"path": encode_path(root.path), "hidden": root.hidden, "exclude": root.exclude}


# ------------------------------------------------------------------------------ applying
def apply_record(state: State, rec: dict[str, Any]) -> bool:
    """Apply one record to ``state`` (in place). Returns False for an op this finder does not
    know (skipped). Raises KeyError/ValueError/TypeError for a malformed record."""
    op = rec.get("op")
    t = float(rec.get("t", 0.0))
    if op in ("learn", "class"):
        name = str(rec["class"])
        cls = _class_from_json(rec, state.classes.get(name))
        state.classes[name] = cls
        state.retired.pop(name, None)
    elif op == "forget":
        name = str(rec["class"])
        cls = state.classes.pop(name, None)
        if rec.get("state") is not None:  # the class as the catalog held it, whole
            cls = _class_from_json(rec["state"], cls)
        if cls is not None:
            state.forgotten.append(Forgotten(t, cls))
        state.retired[name] = t
    elif op == "forgotten":
        cls = _class_from_json(rec["state"], None)
        at = float(rec["at"])
        state.forgotten.append(Forgotten(at, cls))
        if cls.name not in state.classes:
            state.retired[cls.name] = max(at, state.retired.get(cls.name, 0.0))
    elif op == "rename":
        old, new = str(rec["class"]), str(rec["to"])
        cls = state.classes.pop(old, None)
        if cls is not None:
            cls.name = new
            cls.updated = t
            state.classes[new] = cls
            state.retired.pop(new, None)
        state.retired[old] = t
    elif op == "restore":
        name = str(rec["class"])
        at = rec.get("at")
        picks = [
            k
            for k, f in enumerate(state.forgotten)
            if f.cls.name == name and (at is None or f.at == float(at))
        ]
        if picks:
            f = state.forgotten.pop(picks[-1])
            state.classes[name] = f.cls
            state.retired.pop(name, None)
    elif op in ("index", "library"):
        for root in _roots_from_json(rec.get("roots", [])):
            state.roots[root.path] = root
        if rec.get("backbone") is not None:
            if not isinstance(rec["backbone"], dict):
                raise ValueError("a backbone record that is not an object")
            state.backbone = rec["backbone"]
        if "memory_budget" in rec:
            state.memory_budget = rec["memory_budget"]
        if op == "library" and rec.get("retired"):
            state.retired.update({str(k): float(v) for k, v in rec["retired"].items()})
    elif op == "snapshot":
        pass
    else:
        return False
    if "seq" in rec:
        state.seq = int(rec["seq"])
    return True


def state_records(state: State, now: float | None = None) -> list[dict[str, Any]]:
    """The records of a compacted journal holding ``state`` (forgotten classes older than
    ``KEEP_FORGOTTEN`` left out)."""
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for cls in state.classes.values():
        out.append({"op": "class", **class_to_json(cls)})
    for f in state.forgotten:
        if now - f.at <= KEEP_FORGOTTEN:
            out.append({"op": "forgotten", "at": f.at, "state": class_to_json(f.cls)})
    out.append(
        {
            "op": "library",
            "roots": [root_to_json(r) for r in state.roots.values()],
            "backbone": state.backbone,
            "memory_budget": state.memory_budget,
            "retired": {k: v for k, v in state.retired.items() if now - v <= KEEP_FORGOTTEN},
        }
    )
    out.append({"op": "snapshot", "seq": state.seq, "t": now})
    return out
