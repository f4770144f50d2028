"""The catalog's records and how paths are stored: BLOBs of ``os.fsencode(path)``, so names
that are not valid UTF-8 round-trip exactly; the Python side always sees ``str``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from finder.ingest.crawl import FileFact


def encode_path(path: str) -> bytes:
    return os.fsencode(path)


def decode_path(blob: bytes) -> str:
    return os.fsdecode(bytes(blob))


def path_range(root: str) -> tuple[bytes, bytes]:
    """The half-open BLOB range [lo, hi) of every path strictly below directory ``root``."""
    prefix = encode_path(root.rstrip(os.sep) or os.sep)
    if not prefix.endswith(os.fsencode(os.sep)):
        prefix += os.fsencode(os.sep)
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    status: str
    error: str | None


@dataclass
class Scan:
    """One root's walk against the catalog."""

    unchanged: int
    redo: list[tuple[int, FileFact, str]]  # (id, fact, old status): changed or still pending
    new: list[FileFact]
    gone: list[ImageRow]


@dataclass(frozen=True)
class ExampleRow:
    class_name: str
    path: str
    label: int  # 1 positive, 0 negative
    vector: bytes  # float32 unit vector
