"""Carrying classes to another library: ``finder classes --export FILE``, ``finder learn
--import FILE``.

The file is JSON (``FORMAT`` names its kind and version)::

    {"format": "finder-classes", "version": 1, "exported": 1718000000.0,
     "backbone": {"key": "...", "record": {...}},       # the exporting library's backbone
     "classes": [
       {"name": "cat", "backbone": "...", "created": ..., "updated": ...,
        "settings": {"threshold": 0.44},
        "examples": [{"path": "/photos/cat1.jpg", "fingerprint": "ab12...", "label": 1,
                      "vector": "<base64 of little-endian float32>"}, ...]}]}

Every mark is there: ``label`` 1 an example, 0 a counter-example; ``fingerprint`` is the
content fingerprint (:func:`finder.ingest.crawl.fingerprint`, null when the photo could not
be read); ``vector`` the unit vector the class learned it by, made by the class's
``backbone`` (``identity_key``). A path that is not valid UTF-8 is written with its bytes
escaped (``\\xff``), and ``path_bytes`` holds its exact bytes, base64.

Importing matches each mark against what the library indexed: by path (when the two
fingerprints agree, or one is unknown: another machine's ``IMG_0001.jpg`` is another photo),
then by fingerprint (the photo moved, or lives elsewhere here). A mark found is marked by the
library's image, its vector from the store. One not found keeps the vector of the file when
the class's backbone is the library's (nothing is embedded again), else is embedded from its
path when that file is here, else is left out and named in the report. The class is then
learned from its marks in this library (its photos are the background it is learned
against, so its cut-off is its own): one :class:`~finder.teach.Change` per class through
``Teaching.apply``; a class of that name here gets the marks added, as ``learn`` adds them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finder.embed.identity import identity_key
from finder.errors import DecodeError, UnknownClass, UsageError
from finder.folder import Folder
from finder.ingest import crawl
from finder.learn.names import class_name
from finder.store import files
from finder.store.catalog import OK
from finder.teach import Change, Mark, Teaching

FORMAT = "finder-classes"
VERSION = 1


@dataclass
class ClassImport:
    """What importing one class did: how each of its marks was found, and what was not."""

    name: str
    record: dict | None = None  # the class as learned here; None: not imported (``reason``)
    by_path: int = 0  # marks found at the same path (same content)
    by_fingerprint: int = 0  # found by content elsewhere in this library
    by_vector: int = 0  # not indexed here, kept by the file's vector (same backbone)
    embedded: int = 0  # not indexed here, embedded from the file at its path
    missing: list[str] = field(default_factory=list)  # paths of marks left out
    reason: str | None = None


@dataclass
class ImportReport:
    classes: list[ClassImport]

    @property
    def imported(self) -> list[ClassImport]:
        return [c for c in self.classes if c.record is not None]


class Carrying:
    """Classes of the library in ``folder`` out to a file and in from one, every change made
    through ``teaching``."""

    def __init__(self, folder: Folder, teaching: Teaching) -> None:
        self.folder = folder
        self.teaching = teaching

    # -- out ------------------------------------------------------------------------------
    def export(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """The classes (all, or ``names``) as the JSON document described above."""
        records = (
            [self.teaching.class_record(n) for n in names]
            if names is not None
            else self.teaching.classes()
        )
        catalog = self.folder.open_catalog()
        info = self.folder.recorded_backbone()
        out = []
        for record in records:
            examples = []
            for e in catalog.examples(record["name"]):
                row = catalog.image_by_path(e.path)
                fp = row.fingerprint if row is not None and row.status == OK else None
                examples.append(
                    {
                        **path_json(e.path),
                        "fingerprint": fp or _fingerprint(e.path),
                        "label": int(e.label),
                        "vector": base64.b64encode(
                            np.frombuffer(e.vector, np.float32).astype("<f4").tobytes()
                        ).decode("ascii"),
                    }
                )
            out.append(
                {
                    "name": record["name"],
                    "backbone": record["backbone"],
                    "created": record["created"],
                    "updated": record["updated"],
                    "settings": {"threshold": record["threshold"]},
                    "examples": examples,
                }
            )
        return {
            "format": FORMAT,
            "version": VERSION,
            "exported": time.time(),
            "backbone": {"key": identity_key(info), "record": info} if info else None,
            "classes": out,
        }

    def export_to(self, file: str | os.PathLike, names: Sequence[str] | None = None) -> dict:
        """``export`` written to ``file`` (replaced whole, or left as it was)."""
        document = self.export(names)
        files.atomic_write(Path(file), json.dumps(document, indent=1).encode() + b"\n")
        return document

    # -- in -------------------------------------------------------------------------------
    def load(self, file: str | os.PathLike) -> dict[str, Any]:
        """The document in ``file``, checked; ``UsageError`` (one line) when it is not one."""
        try:
            with open(file, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            raise UsageError(f"no such file: {os.fsdecode(file)}") from None
        except IsADirectoryError:
            raise UsageError(f"{os.fsdecode(file)} is a folder, not a classes file") from None
        except (ValueError, UnicodeDecodeError):
            raise UsageError(
                f"{os.fsdecode(file)} is not a classes file (an export of classes): not JSON"
            ) from None
        problem = _problem(data)
        if problem:
            raise UsageError(f"{os.fsdecode(file)} is not a classes file: {problem}")
        return data

    def import_(
        self, source: str | os.PathLike | Mapping[str, Any], names: Sequence[str] | None = None
    ) -> ImportReport:
        """Learn the classes of ``source`` (a file, or a document as ``export`` makes it; all
        of them, or ``names``) in this library, each mark matched as the module says."""
        if isinstance(source, Mapping):
            problem = _problem(source)
            if problem:
                raise UsageError(f"not a classes document: {problem}")
            document: Mapping[str, Any] = source
        else:
            document = self.load(source)
        info = self.folder.require_indexed()
        key = identity_key(info)
        classes = list(document["classes"])
        if names is not None:
            wanted = [class_name(n) for n in names]
            known = {class_name(c["name"]) for c in classes}
            absent = [n for n in wanted if n not in known]
            if absent:
                listed = ", ".join(sorted(known)) or "none"
                raise UnknownClass(f"no class named {absent[0]!r} in the file (it holds: {listed})")
            classes = [c for c in classes if class_name(c["name"]) in wanted]
        return ImportReport([self._import_one(c, key) for c in classes])

    def _import_one(self, data: Mapping[str, Any], key: str) -> ClassImport:
        name = class_name(data["name"])
        result = ClassImport(name)
        catalog = self.folder.open_catalog()
        same = data.get("backbone") == key
        dim = int(self.folder.require_indexed()["dim"])
        examples = [_example(e) for e in data["examples"]]
        found = catalog.ok_by_fingerprint(fp for _, fp, _, _ in examples if fp)
        marks: dict[str, Mark] = {}
        for path, fp, label, vector in examples:
            row = catalog.image_by_path(path)
            if (
                row is not None
                and row.status == OK
                and (not fp or not row.fingerprint or fp == row.fingerprint)
            ):
                mark, result.by_path = Mark(row.id, row.path, label), result.by_path + 1
            elif fp in found:
                row = found[fp]
                mark = Mark(row.id, row.path, label)
                result.by_fingerprint += 1
            elif same and vector is not None and vector.shape == (dim,):
                mark, result.by_vector = Mark(None, path, label, vector), result.by_vector + 1
            elif os.path.isfile(path):
                mark, result.embedded = Mark(None, path, label), result.embedded + 1
            else:
                result.missing.append(path)
                continue
            marks.setdefault(mark.path, mark)
        has_class = any(c["name"] == name for c in self.teaching.classes())
        if not any(m.label == 1 for m in marks.values()) and not has_class:
            result.reason = "none of its examples is in this library"
            return result
        try:
            result.record = self.teaching.apply(Change(name, tuple(marks.values())))
        except (UsageError, DecodeError) as e:
            result.reason = str(e)
        return result


def path_json(path: str) -> dict[str, str]:
    """``{"path": ...}`` for JSON: valid UTF-8 always, with ``path_bytes`` (the exact bytes,
    base64) when the name is not UTF-8."""
    raw = os.fsencode(path)
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "path": raw.decode("utf-8", "backslashreplace"),
            "path_bytes": base64.b64encode(raw).decode("ascii"),
        }


def _fingerprint(path: str) -> str | None:
    """The content fingerprint of the photo at ``path``; None when it cannot be read."""
    try:
        return crawl.fingerprint(path, os.stat(path).st_size)
    except (OSError, DecodeError):
        return None


def _example(e: Mapping[str, Any]) -> tuple[str, str | None, int, np.ndarray | None]:
    """(path, fingerprint, label, vector or None) of one mark of a checked document."""
    if e.get("path_bytes"):
        path = os.fsdecode(base64.b64decode(e["path_bytes"]))
    else:
        path = str(e["path"])
    vector = None
    if isinstance(e.get("vector"), str):
        try:
            vector = np.frombuffer(base64.b64decode(e["vector"], validate=True), "<f4")
        except (ValueError, binascii.Error):
            vector = None
        if vector is not None and not np.isfinite(vector).all():
            vector = None
    fp = e.get("fingerprint")
    return path, fp if isinstance(fp, str) else None, int(e["label"]), vector


def _problem(data: Any) -> str | None:
    """What makes ``data`` not a classes document (None: it is one)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return 'its "format" is not "finder-classes"'
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        return f"version {data.get('version')!r} (this finder reads {VERSION}); upgrade finder"
    if not isinstance(data.get("classes"), list):
        return 'it lacks its "classes"'
    for c in data["classes"]:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            return "a class without a name"
        if not isinstance(c.get("examples"), list):
            return f"class {c['name']!r} lacks its examples"
        for e in c["examples"]:
            if not isinstance(e, dict) or e.get("label") not in (0, 1):
                return f"class {c['name']!r} has a mark without a label 0 or 1"
            if not isinstance(e.get("path"), str) and not isinstance(e.get("path_bytes"), str):
                return f"class {c['name']!r} has a mark without a path"
            if "path_bytes" in e:
                try:
                    base64.b64decode(e["path_bytes"], validate=True)
                except (ValueError, binascii.Error, TypeError):
                    return f"class {c['name']!r} has a mark whose path_bytes is not base64"
    return None
