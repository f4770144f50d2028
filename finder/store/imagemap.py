"""Which image id names which file: a small sidecar of the catalog's images, written after each
index run, so that ``finder repair`` can tie the vectors (keyed by image id) back to their files
when the catalog and its backups are all lost.

    write(catalog, library_dir)     # after an index run (beside the catalog's backup)
    entries = read(library_dir)     # [Entry(id, path, size, mtime_ns, fingerprint, ok)], or None

The file, ``images.npz`` in the library folder, is a compressed numpy archive (its members carry
CRCs: a damaged file reads as None, as a missing one): ids, sizes, modification times, whether
the image was indexed (ok) or pending, fingerprints, and the paths' bytes with their offsets.
Failed images are left out (the next index run tries them again), and so are videos: their
vectors are their frames', which a lost catalog cannot tie back (the next index run finds a
video as new and samples it again). Ids are never given twice
(``Catalog.next_id``), so an id in an older map still names the photo whose vector the store
holds under it.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finder.store import files
from finder.store.catalog import Catalog, decode_path

IMAGE_MAP = "images.npz"


@dataclass(frozen=True)
class Entry:
    id: int
    path: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    ok: bool


def write(catalog: Catalog, directory: Path) -> Path:
    """Write the map of ``catalog``'s ok and pending photos into ``directory`` (atomically)."""
    ids, sizes, mtimes, oks, fps, blobs = [], [], [], [], [], []
    for i, p, size, mtime, fp, status in catalog.db.execute(
        "SELECT id, path, size, mtime_ns, fingerprint, status FROM images "
        "WHERE status IN ('ok', 'pending') AND kind = 'photo' ORDER BY id"
    ):
        ids.append(i)
        sizes.append(size)
        mtimes.append(mtime)
        oks.append(status == "ok")
        fps.append((fp or "").encode("ascii", "replace"))
        blobs.append(bytes(p))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format=np.int64(1),
        ids=np.asarray(ids, dtype=np.int64),
        sizes=np.asarray(sizes, dtype=np.int64),
        mtimes=np.asarray(mtimes, dtype=np.int64),
        ok=np.asarray(oks, dtype=bool),
        fingerprints=np.asarray(fps, dtype="S32"),
        paths=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
    )
    path = Path(directory) / IMAGE_MAP
    files.atomic_write(path, buf.getvalue())
    return path


def read(directory: Path) -> list[Entry] | None:
    """The map's entries, None when there is none or it is damaged."""
    try:
        with np.load(Path(directory) / IMAGE_MAP, allow_pickle=False) as z:
            if int(z["format"]) != 1:
                return None
            ids, sizes, mtimes = z["ids"], z["sizes"], z["mtimes"]
            ok, fps, paths, offsets = z["ok"], z["fingerprints"], z["paths"], z["offsets"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    n = len(ids)
    if not (len(sizes) == len(mtimes) == len(ok) == len(fps) == n and len(offsets) == n + 1):
        return None
    blob = paths.tobytes()
    if offsets[-1] != len(blob) or (np.diff(offsets) < 0).any():
        return None
    out = []
    for k in range(n):
        fp = fps[k].decode("ascii", "replace") or None
        path = decode_path(blob[offsets[k] : offsets[k + 1]])
        out.append(Entry(int(ids[k]), path, int(sizes[k]), int(mtimes[k]), fp, bool(ok[k])))
    return out
