"""Walk roots and yield the facts of every photo and video file found: path, size, modification
time.

Rules of the walk (``walk``):

- A file is a photo when its lowercase extension is in ``IMAGE_EXTENSIONS``, a video when it is
  in ``VIDEO_EXTENSIONS`` and ``videos=True`` (an index run); its content is only looked at
  later, by ``decode`` and ``video``.
- A Live Photo is one item, the photo: a ``.mov`` or ``.mp4`` of at most
  ``LIVE_PHOTO_MAX_BYTES`` beside a ``.heic``, ``.heif``, ``.jpg`` or ``.jpeg`` of the same name
  (any case) in the same folder (``IMG_1234.HEIC`` and ``IMG_1234.MOV``) is not yielded. (A
  Google Motion Photo, the video inside the JPEG, is a JPEG: one item already.)
- Paths are absolute ``str``: ``os.scandir`` on ``str`` paths decodes names with the file system
  encoding and ``surrogateescape``, so names that are not valid UTF-8 survive, and
  ``os.fsencode(path)`` gives the exact bytes back.
- Hidden files and folders (name starting with ``.``) are skipped unless ``hidden=True``.
  Junk that no photo library wants (``JUNK_NAMES``, ``JUNK_PREFIXES``: AppleDouble ``._*``
  files, ``.DS_Store``, ``Thumbs.db``, Synology ``@eaDir``, ``$RECYCLE.BIN``, ``.Trash-*``, ...)
  is skipped even with ``hidden=True``.
- ``exclude`` globs (``fnmatch``) are matched against both the name and the full path of each
  file and folder; a matching folder is not entered.
- Symbolic links are followed. Every folder is entered at most once (tracked by
  ``(st_dev, st_ino)``, so symlink loops and bind-mount loops end), and every file is yielded at
  most once (also by ``(st_dev, st_ino)``: a symlink to a photo already seen, or a hard link, is
  not yielded again; for folders and files alike the first path in walk order wins).
  ``/proc``, ``/sys``, ``/dev`` and ``/run`` are never entered from above (they are marked
  visited up front), though a root below them, like ``/run/media/usb``, can be walked. Pseudo
  file systems (``mounts.PSEUDO_FS``: proc, sysfs, devtmpfs, ..., told by their device number
  in ``/proc/self/mountinfo``) are never walked at all: a root on one, or reached through one
  (``/proc/self/root``), yields nothing (``mounts.pseudo_reason`` says why); a symbolic link
  into one is skipped.
- Only regular files are yielded: a FIFO or device named like a photo is skipped.
- A folder whose name has a photo extension is yielded with ``is_dir=True`` (so it can be
  recorded as failed) and is also entered.
- A root that is a file is yielded when it has a photo extension (hidden and exclude rules do
  not apply to a root named explicitly) and otherwise yields nothing. A missing root raises
  ``UsageError`` before anything is yielded.
- Entries that vanish or cannot be stat-ed during the walk, and folders that cannot be listed,
  are skipped; pass ``on_error`` to hear about them.
- Order is deterministic: depth first, entries of each folder in sorted name order.
- A photo's XMP sidecar (``photo.jpg.xmp``, else ``photo.xmp``: ``sidecar_names``) is found in
  the same listing and yielded with it (``FileFact.sidecar``: path, size, modification time), so
  that an index run sees a sidecar added, changed or removed without opening any file.
- Cost: one ``scandir`` per folder and one ``stat`` per photo file, per sidecar and per folder;
  other files cost nothing beyond their directory entry.

Also here: ``fingerprint(path, size)`` (content hash to recognise moved files; the file opened
by ``files.open_regular``, which never blocks on a FIFO).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from finder.errors import DecodeError, UsageError
from finder.ingest.files import open_regular, os_error_reason
from finder.ingest.mounts import links_through_pseudo, pseudo_devices, pseudo_reason

#: RAW extensions decoded through LibRaw (``finder.ingest.raw``) (lowercase, with the dot).
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".dng",  # Adobe, and many phones
        ".cr2",
        ".cr3",
        ".crw",  # Canon
        ".nef",
        ".nrw",  # Nikon
        ".arw",
        ".srf",
        ".sr2",  # Sony
        ".raf",  # Fujifilm
        ".orf",  # Olympus / OM System
        ".rw2",  # Panasonic
        ".pef",  # Pentax
        ".srw",  # Samsung
        ".rwl",  # Leica
        ".3fr",  # Hasselblad
        ".iiq",  # Phase One
        ".erf",  # Epson
        ".mrw",  # Minolta
        ".kdc",
        ".dcr",  # Kodak
        ".x3f",  # Sigma
    }
)

IMAGE_EXTENSIONS: frozenset[str] = (
    frozenset(
        {
            ".jpg",
            ".jpeg",
            ".jpe",
            ".jfif",
            ".png",
            ".webp",
            ".gif",
            ".bmp",
            ".tif",
            ".tiff",
            ".heic",
            ".heif",
            ".mpo",
            ".avif",  # Pillow >= 11.3 reads AVIF itself
            ".jp2",  # JPEG 2000
            ".j2k",
            ".j2c",
            ".jpf",
            ".jpx",
            ".pbm",  # Netpbm
            ".pgm",
            ".ppm",
            ".pnm",
        }
    )
    | RAW_EXTENSIONS
)

#: Video extensions (lowercase, with the dot), read through PyAV (``finder.ingest.video``).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".3gp", ".mts", ".m2ts"}
)
#: A Live Photo's video (``IMG_1234.MOV`` beside ``IMG_1234.HEIC``): its extensions, its
#: photo's, and the most it weighs (a Live Photo's video is about 3 s: 2-10 MB even in 4K), so
#: that a long video that happens to share a photo's name is never left out.
LIVE_VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mov", ".mp4"})
LIVE_PHOTO_EXTENSIONS: frozenset[str] = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
LIVE_PHOTO_MAX_BYTES = 24 * 2**20

#: Names skipped everywhere, even with ``hidden=True`` (compared in lowercase).
JUNK_NAMES: frozenset[str] = frozenset(
    {
        ".ds_store",
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        "@eadir",  # Synology thumbnails (folders named like photos inside)
        "#recycle",  # Synology recycle bin
        "@recycle",  # QNAP recycle bin
        ".@__thumb",  # QNAP thumbnails
        "@synoeastream",
        ".thumbnails",
        ".thumbs",
        "$recycle.bin",
        "system volume information",
        ".trash",
        ".trashes",
        ".spotlight-v100",
        ".fseventsd",
        ".temporaryitems",
        ".documentrevisions-v100",
        ".appledouble",
        "lost+found",
    }
)
#: Name prefixes skipped everywhere (lowercase): macOS AppleDouble files, freedesktop trash.
JUNK_PREFIXES: tuple[str, ...] = ("._", ".trash-")

#: Pseudo file systems never entered from above.
PSEUDO_DIRS: tuple[str, ...] = ("/proc", "/sys", "/dev", "/run")

_CHUNK = 64 * 1024


SIDECAR_SUFFIX = ".xmp"


@dataclass(frozen=True, slots=True)
class Sidecar:
    """A photo's XMP sidecar as the walk saw it: where, how large, modified when."""

    path: str
    size: int
    mtime_ns: int

    @property
    def stamp(self) -> str:
        """What changes when the sidecar does: its size, modification time and name."""
        return f"{self.size}:{self.mtime_ns}:{os.path.basename(self.path)}"


@dataclass(frozen=True, slots=True)
class FileFact:
    """One photo or video file (or a folder named like one, ``is_dir=True``) found by
    ``walk``, with its sidecar when it has one."""

    path: str
    size: int
    mtime_ns: int
    is_dir: bool = False
    sidecar: Sidecar | None = None


def sidecar_names(photo: str) -> tuple[str, str | None]:
    """The names a photo's XMP sidecar may have, in the order they are taken: ``photo.jpg.xmp``
    (darktable's and digiKam's naming), then ``photo.xmp`` (Lightroom's and digiKam's other
    naming; None for a photo without an extension)."""
    stem, ext = os.path.splitext(photo)
    short = stem + SIDECAR_SUFFIX
    return photo + SIDECAR_SUFFIX, (short if ext and short != photo else None)


def find_sidecar(photo: str) -> Sidecar | None:
    """The sidecar of ``photo`` on disk (the first of ``sidecar_names`` that is a regular
    file), or None."""
    for name in sidecar_names(photo):
        if name is None:
            continue
        try:
            st = os.stat(name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return Sidecar(name, st.st_size, st.st_mtime_ns)
    return None


def _listed_sidecar(sidecars: dict[str, os.DirEntry[str]], name: str) -> Sidecar | None:
    """The sidecar of the photo ``name`` among the ``.xmp`` entries of its folder's listing."""
    dot = name.rfind(".")
    for candidate in (name + SIDECAR_SUFFIX, name[:dot] + SIDECAR_SUFFIX):
        entry = sidecars.get(candidate)
        if entry is None:
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return Sidecar(entry.path, st.st_size, st.st_mtime_ns)
    return None


def is_image_name(name: str) -> bool:
    """True when ``name`` ends with one of ``IMAGE_EXTENSIONS`` (case-insensitive); a name that
    is only an extension (``.jpg``) has none."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def is_video_name(name: str) -> bool:
    """True when ``name`` ends with one of ``VIDEO_EXTENSIONS`` (case-insensitive)."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in VIDEO_EXTENSIONS


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def live_photo_stems(names: Iterable[str]) -> frozenset[str]:
    """The names (lowercase, without extension) of the photos among ``names`` that a Live
    Photo's video beside them would belong to."""
    return frozenset(
        name[: name.rfind(".")].lower()
        for name in names
        if _extension(name) in LIVE_PHOTO_EXTENSIONS
    )


def is_live_video(name: str, size: int, stems: frozenset[str]) -> bool:
    """True when the video ``name`` (of ``size`` bytes) is the moving part of a Live Photo
    whose photo is in the same folder (``stems``: from :func:`live_photo_stems`)."""
    return (
        _extension(name) in LIVE_VIDEO_EXTENSIONS
        and size <= LIVE_PHOTO_MAX_BYTES
        and name[: name.rfind(".")].lower() in stems
    )


def is_junk(name: str) -> bool:
    """True for file-system clutter skipped even when hidden files are wanted."""
    low = name.lower()
    return low in JUNK_NAMES or low.startswith(JUNK_PREFIXES)


def walk(
    roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    hidden: bool = False,
    exclude: Iterable[str] = (),
    on_error: Callable[[str, OSError], None] | None = None,
    videos: bool = False,
) -> Iterator[FileFact]:
    """Yield a ``FileFact`` for each photo (and, with ``videos``, video) file under ``roots``
    (see the module docstring). An index run walks videos too; a folder of examples to learn
    from holds photos only (until teaching takes a video's frame).

    ``roots`` is one path or several. Raises ``UsageError("no such folder: ...")`` at once,
    before yielding, if a root does not exist. ``on_error(path, error)`` is called for each entry
    or folder skipped because of an ``OSError``.
    """
    if isinstance(roots, (str, bytes, os.PathLike)):
        roots = [roots]
    checked: list[tuple[str, os.stat_result]] = []
    pseudo = pseudo_devices()
    for root in roots:
        path = os.path.abspath(os.fsdecode(root))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise UsageError(f"no such folder: {path}") from None
        except OSError as e:
            raise UsageError(f"cannot read {path}: {os_error_reason(e)}") from None
        if pseudo_reason(path, pseudo) is None:  # else nothing to walk there
            checked.append((path, st))
    matcher = _exclude_matcher(exclude)
    return _walk(checked, hidden, matcher, on_error, set(pseudo), videos)


def _exclude_matcher(patterns: Iterable[str]) -> Callable[[str], bool] | None:
    patterns = [os.fsdecode(p) for p in patterns]
    if not patterns:
        return None
    regex = re.compile("|".join(f"(?:{fnmatch.translate(os.path.normcase(p))})" for p in patterns))
    return lambda s: regex.match(os.path.normcase(s)) is not None


def _key(st: os.stat_result) -> int:
    return (st.st_dev << 64) | st.st_ino


def _walk(
    roots: list[tuple[str, os.stat_result]],
    hidden: bool,
    excluded: Callable[[str], bool] | None,
    on_error: Callable[[str, OSError], None] | None,
    pseudo_devs: set[int] | None = None,
    videos: bool = True,
) -> Iterator[FileFact]:
    pseudo_devs = pseudo_devs or set()

    def wanted(name: str) -> bool:
        return is_image_name(name) or (videos and is_video_name(name))

    seen_dirs: set[int] = set()
    for pseudo in PSEUDO_DIRS:
        try:
            seen_dirs.add(_key(os.stat(pseudo)))
        except OSError:
            pass
    seen_files: set[int] = set()

    def report(path: str, e: OSError) -> None:
        if on_error is not None:
            on_error(path, e)

    Listing = tuple[Iterator[os.DirEntry[str]], frozenset[str], dict[str, os.DirEntry[str]]]

    def listing(path: str) -> Listing | None:
        """A folder's entries in name order, the stems of its Live Photos' photos, and its
        sidecars by name."""
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError as e:
            report(path, e)
            return None
        entries.sort(key=lambda d: d.name)
        stems = live_photo_stems(d.name for d in entries) if videos else frozenset()
        return iter(entries), stems, {d.name: d for d in entries if d.name.endswith(SIDECAR_SUFFIX)}

    for root, st in roots:
        if not stat.S_ISDIR(st.st_mode):
            if stat.S_ISREG(st.st_mode) and wanted(root) and _key(st) not in seen_files:
                seen_files.add(_key(st))
                yield FileFact(root, st.st_size, st.st_mtime_ns, sidecar=find_sidecar(root))
            continue
        if _key(st) in seen_dirs:
            continue
        seen_dirs.add(_key(st))
        first = listing(root)
        stack = [first] if first is not None else []
        while stack:
            entries, stems, sidecars = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            name = entry.name
            if name[0] == "." and (not hidden or is_junk(name)):
                continue
            try:
                is_dir = entry.is_dir()
                if is_dir:
                    if is_junk(name) or (
                        excluded is not None and (excluded(name) or excluded(entry.path))
                    ):
                        continue
                    est = entry.stat()
                elif wanted(name):  # junk files have no photo extension, except "._*"
                    if excluded is not None and (excluded(name) or excluded(entry.path)):
                        continue
                    est = entry.stat()
                    if not stat.S_ISREG(est.st_mode):
                        continue
                    if stems and is_live_video(name, est.st_size, stems):
                        continue  # a Live Photo's video: the photo beside it is the item
                else:
                    continue
            except OSError as e:
                report(entry.path, e)
                continue
            if est.st_dev in pseudo_devs or (  # a symbolic link into /proc, /sys, /dev, ...
                pseudo_devs and entry.is_symlink() and links_through_pseudo(entry.path)
            ):
                continue
            key = _key(est)
            if is_dir:
                if key in seen_dirs:
                    continue
                seen_dirs.add(key)
                if wanted(name):
                    yield FileFact(entry.path, est.st_size, est.st_mtime_ns, is_dir=True)
                sub = listing(entry.path)
                if sub is not None:
                    stack.append(sub)
            elif key not in seen_files:
                seen_files.add(key)
                side = _listed_sidecar(sidecars, name) if sidecars else None
                yield FileFact(entry.path, est.st_size, est.st_mtime_ns, sidecar=side)


def fingerprint(path: str | os.PathLike[str], size: int) -> str:
    """A content fingerprint to recognise a moved or renamed file: 32 hex characters.

    BLAKE2b (16-byte digest) of ``size`` and the first and last 64 KiB (the whole file when it
    is smaller than 128 KiB). Raises ``DecodeError`` with a short reason when unreadable.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(int(size).to_bytes(8, "little", signed=False))
    with open_regular(path) as f:
        try:
            h.update(f.read(_CHUNK))
            if size > _CHUNK:
                f.seek(max(_CHUNK, size - _CHUNK))
                h.update(f.read(_CHUNK))
        except OSError as e:
            raise DecodeError(os_error_reason(e)) from None
    return h.hexdigest()
