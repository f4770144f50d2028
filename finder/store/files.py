"""Small durable-file helpers of the store: fsync a folder, replace a file atomically, append
every byte, checksum a file, and a size that is 0 for a missing file."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (new, renamed, removed files) durable; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a kill leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def file_crc(path: Path) -> tuple[int, int]:
    """(CRC-32, size) of a file, read in 16 MB blocks."""
    crc = 0
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return crc, size


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_int64(path: Path, records: int = 1) -> np.ndarray:
    """The whole int64 records of ``records`` values in a file (a torn last one left out);
    empty when the file is missing."""
    count = size(path) // (8 * records) * records
    try:
        return np.fromfile(path, dtype=np.int64, count=count)
    except FileNotFoundError:
        return np.zeros(0, dtype=np.int64)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
