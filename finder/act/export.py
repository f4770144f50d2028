"""Put found photos into a folder: copies, symbolic links or hard links, never overwriting.

``export(paths, folder, mode)`` keeps each file's name; when the name is taken it tries
``name-1.jpg``, ``name-2.jpg``, ... (every new file is created exclusively, so nothing that
exists is ever replaced, even by a race). A name already holding the same photo (the same
bytes for a copy, a link to the same file for the links) counts as done and nothing is added,
so exporting the same answer twice adds nothing the second time.

The folder is created if missing; a folder that is a file, that cannot be created or written,
or (hard links) that is on another file system than a photo, is refused before anything is
written (``UsageError``). A failure half-way (disk full, a bind mount between two folders of
one file system) stops with an ``ExportError``; what was exported stays, and a folder made for
the export and left empty is removed.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from finder.errors import Arg, ExportError, Part, UsageError

MODES = ("copy", "link", "hardlink")
NEW, RENAMED, SAME = "new", "renamed", "same"


@dataclass(frozen=True)
class Exported:
    source: str
    target: str
    status: str  # "new", "renamed" (written under name-N) or "same" (already there)


def check_folder(folder: str | os.PathLike[str]) -> str:
    """The export folder as an absolute path, created if missing; ``UsageError`` when it is a
    file, cannot be created, or cannot be written."""
    path = os.path.abspath(os.path.expanduser(os.fspath(folder)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"the export target {folder} is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the export folder {folder}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into the export folder {folder} (read-only)")
    return path


def export(paths: Iterable[str], folder: str | os.PathLike[str], mode: str) -> list[Exported]:
    """Copy (``mode`` "copy"), symlink ("link") or hard-link ("hardlink") each of ``paths`` into
    ``folder``, keeping names and resolving clashes as the module docstring says."""
    if mode not in MODES:
        raise UsageError(f"export mode must be one of {', '.join(MODES)}, not {mode!r}")
    sources = [os.path.abspath(src) for src in paths]
    path = os.path.abspath(os.path.expanduser(os.fspath(folder)))
    if mode == "hardlink":
        check_same_file_system(sources, path)
    made = not os.path.isdir(path)
    target = check_folder(folder)
    try:
        return [_one(src, target, mode) for src in sources]
    except BaseException:
        if made:  # nothing of ours stays behind: the folder made for it, while still empty
            with contextlib.suppress(OSError):
                os.rmdir(target)
        raise


def check_same_file_system(sources: Iterable[str], folder: str) -> None:
    """``UsageError`` unless every file of ``sources`` is on the file system that holds
    ``folder`` (or would hold it, once created): a hard link cannot cross file systems."""
    where = folder
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        device = os.stat(where).st_dev
    except OSError:
        return  # check_folder says what is wrong with it
    for src in sources:
        try:
            other = os.stat(src).st_dev != device
        except OSError:
            continue  # a file gone since it was indexed: export says so
        if other:
            raise UsageError(*_cross_device(src, folder))


def _candidates(name: str):
    stem, ext = os.path.splitext(name)
    yield name
    n = 1
    while True:
        yield f"{stem}-{n}{ext}"
        n += 1


def _one(src: str, folder: str, mode: str) -> Exported:
    if not os.path.isfile(src):
        raise ExportError(f"cannot export {src}: the file is gone (run `finder index` again)")
    for k, name in enumerate(_candidates(os.path.basename(src))):
        dest = os.path.join(folder, name)
        if os.path.lexists(dest):
            if _same(src, dest, mode):
                return Exported(src, dest, SAME)
            continue
        try:
            _make(src, dest, mode)
        except FileExistsError:  # created meanwhile by someone else: next name
            continue
        except OSError as e:
            raise ExportError(*_reason(e, src, dest, mode)) from None
        return Exported(src, dest, RENAMED if k else NEW)
    raise AssertionError("unreachable")  # pragma: no cover


def _same(src: str, dest: str, mode: str) -> bool:
    try:
        if os.path.samefile(src, dest):
            return True
        if mode != "copy" or os.path.islink(dest) or not os.path.isfile(dest):
            return False
        return os.path.getsize(src) == os.path.getsize(dest) and filecmp.cmp(
            src, dest, shallow=False
        )
    except OSError:  # a dangling link or an unreadable file: not the same photo
        return False


def _make(src: str, dest: str, mode: str) -> None:
    if mode == "link":
        os.symlink(src, dest)
    elif mode == "hardlink":
        os.link(src, dest)
    else:
        with open(src, "rb") as fin:
            fout = open(dest, "xb")  # exclusive: never replaces a file
            try:
                with fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                shutil.copystat(src, dest)  # keep the photo's dates
            except BaseException:
                os.unlink(dest)
                raise


def _cross_device(src: str, folder: str) -> tuple[Part, ...]:
    return (
        f"cannot hard-link {src} into {folder}: another file system (use ",
        Arg("copy"),
        " or ",
        Arg("link"),
        ")",
    )


def _reason(e: OSError, src: str, dest: str, mode: str) -> tuple[Part, ...]:
    if e.errno == errno.EXDEV:
        return _cross_device(src, os.path.dirname(dest))
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {dest}: {e.strerror} (read-only target?)",)
    verb = {"copy": "copy", "link": "link", "hardlink": "hard-link"}[mode]
    return (f"cannot {verb} {src} to {dest}: {e.strerror or e}",)
