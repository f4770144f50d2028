"""The saved index: ``index.json`` says which tier's files (``index-T.*``) are current, for which
generation of the raw log and how many of its rows they cover."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from finder.store import files
from finder.store.raw import FORMAT
from finder.store.tiers import Tier, TierDamaged, TierOptions, by_kind

INDEX_META = "index.json"
# What a missing, damaged or foreign saved index raises while being read.
DAMAGE = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, TierDamaged)


def exists(directory: Path) -> bool:
    return (directory / INDEX_META).exists()


def load(directory: Path, dim: int, options: TierOptions) -> tuple[Tier | None, int, int]:
    """(the saved index or None when its tier saves nothing, the generation and the rows it
    covers). Raises one of :data:`DAMAGE` when it cannot be used."""
    meta = json.loads((directory / INDEX_META).read_text())
    index = by_kind(meta["tier"]).load(directory, meta, dim, options)
    return index, int(meta["generation"]), int(meta["rows"])


def save(directory: Path, index: Tier | None, kind: str, generation: int, rows: int) -> None:
    """Write ``index`` (None: no vectors) durably, then switch ``index.json`` to it and remove
    the files of earlier saves."""
    stem = f"index-{secrets.token_hex(6)}"
    meta: dict[str, Any] = {"format": FORMAT, "tier": kind, "generation": generation, "rows": rows}
    if index is not None:
        meta.update(index.save(directory, stem))
    files.atomic_write(directory / INDEX_META, json.dumps(meta).encode())
    for path in list(directory.glob("index-*")):
        if not path.name.startswith(stem + "."):
            path.unlink(missing_ok=True)
