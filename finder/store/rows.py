"""The catalog's records and how paths are stored: BLOBs of ``os.fsencode(path)``, so names
that are not valid UTF-8 round-trip exactly; the Python side always sees ``str``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


#: The columns of ``images`` an :class:`ImageRow` is made of, in its order (``image_row``).
IMAGE_COLUMNS = "id, path, size, mtime_ns, fingerprint, status, error"


def image_row(row: Sequence[Any]) -> ImageRow:
    """The :class:`ImageRow` of a row of ``SELECT {IMAGE_COLUMNS} FROM images``."""
    i, p, size, mtime_ns, fp, status, err = row
    return ImageRow(i, decode_path(p), size, mtime_ns, fp, status, err)


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
    origin: str | None = None  # where the mark comes from (finder.learn.origin); None: not known
