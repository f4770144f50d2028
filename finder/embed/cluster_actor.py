"""The actor side of a cluster run (``finder.embed.cluster``): ``Embedder`` builds the library's
recorded backbone once per actor and embeds each batch of (id, path) it is given with the same
``embed_paths`` as a local run; a model file sent through the object store is written to the
node first. The results travel as numpy columns: vectors, an error text ("" when none) and the
photo's facts as JSON text ("" when none)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np


class _Serial:
    """A backbone whose ``embed`` runs one call at a time (two actor calls share it)."""

    def __init__(self, backbone: Any) -> None:
        self._backbone = backbone
        self._lock = threading.Lock()
        self.info = backbone.info
        self.batch_size = backbone.batch_size

    def embed(self, batch: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        with self._lock:
            return self._backbone.embed(batch, batch_size=batch_size)


class Embedder:
    """The actor: the recorded backbone, built once; each call embeds a batch of paths."""

    def __init__(
        self,
        info: dict,
        model: str | None,
        blob: list | None,
        batch_size: int | None,
        workers: int | None,
        threads: dict[str, int],
    ) -> None:
        import ray

        from finder.embed import registry
        from finder.embed.identity import BackboneInfo

        if blob is not None:  # the model file came through the object store
            model = _materialise(ray.get(blob[0]), model or "model")
        built = registry.from_info(BackboneInfo.from_dict(info), weights=model)
        self.backbone = _Serial(built)
        self.batch_size = batch_size
        node = ray.get_runtime_context().get_node_id()
        self.workers = workers or threads.get(node) or None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from finder.embed.pipeline import embed_paths

        ids = np.asarray(batch["id"], dtype=np.int64)
        paths = [os.fsdecode(bytes(p)) for p in batch["path"]]
        vectors = np.zeros((len(ids), self.backbone.info.dim), dtype=np.float32)
        errors = [""] * len(ids)
        facts = [""] * len(ids)
        results = embed_paths(
            enumerate(paths),
            self.backbone,
            batch_size=self.batch_size,
            workers=self.workers,
            facts=True,
        )
        for k, vector, error, photo in results:
            if vector is None:
                errors[k] = _printable(error or "could not decode")
            else:
                vectors[k] = vector
                facts[k] = facts_json(photo)
        return {
            "id": ids,
            "vector": vectors,
            "error": np.asarray(errors, dtype=object),
            "facts": np.asarray(facts, dtype=object),
        }


def _materialise(data: bytes, name: str) -> str:
    """Write a shipped model file to this node's temporary folder (same base name, so that its
    type is known by its suffix); reused when present with the same size."""
    folder = Path(tempfile.gettempdir()) / "finder-models"
    folder.mkdir(parents=True, exist_ok=True)
    import hashlib

    digest = hashlib.sha256(data).hexdigest()[:16]
    path = folder / f"{digest}-{os.path.basename(name)}"
    if not path.exists() or path.stat().st_size != len(data):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return str(path)


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def facts_json(photo: Any) -> str:
    """A photo's facts (finder.ingest.facts.PhotoFacts) as one JSON text, "" when none."""
    if photo is None:
        return ""
    return json.dumps({k: v for k, v in dataclasses.asdict(photo).items() if v is not None})


def facts_from_json(text: str) -> Any:
    if not text:
        return None
    from finder.ingest.facts import PhotoFacts

    return PhotoFacts(**json.loads(text))
