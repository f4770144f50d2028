"""Opening a file safely and saying why it cannot be: ``open_regular(path)`` opens a regular
file for reading without ever blocking on a FIFO (``DecodeError`` with a short reason
otherwise), ``os_error_reason`` words an ``OSError`` in a few words, and ``file_kind`` says
what a path is when it is not a photo file (a folder, a FIFO, a device, missing).

``decode``, ``video``, ``keywords`` and ``crawl.fingerprint`` open photos through
``open_regular``; the web page's files and ``dupes``' hashes too.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from finder.errors import DecodeError


def os_error_reason(e: OSError) -> str:
    """A short reason for an ``OSError`` met while reading a file."""
    if isinstance(e, FileNotFoundError):
        return "file vanished"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    if e.errno == errno.EIO:
        return "input/output error"
    return e.strerror or str(e) or type(e).__name__


def file_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` is, in words: "file" (a regular one), "missing", "a folder", "a FIFO
    (named pipe)", "a socket", "a character device", "a block device" or "unreadable (...)"."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({os_error_reason(e)})"
    kinds = [
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading, or raise ``DecodeError`` with the reason it cannot be.

    ``O_NONBLOCK`` keeps a FIFO named like a photo from blocking the open; ``fstat`` then
    refuses anything that is not a regular file (no race between a check and the open).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise DecodeError(os_error_reason(e)) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise DecodeError("is a directory")
        if not stat.S_ISREG(mode):
            raise DecodeError("not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise DecodeError(os_error_reason(e)) from None
        raise
