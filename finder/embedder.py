"""A library's backbone and its photos' vectors: the backbone recorded with the library (or chosen
for a new one), built when first needed, and the vectors of photos, from the store when they are
indexed, else embedded now."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from finder import sync
from finder.embed.identity import (
    BackboneChoice,
    BackboneInfo,
    check_choice,
    check_precision,
    same_as,
)
from finder.embed.identity import describe as describe_backbone
from finder.errors import BackboneMismatch, UsageError
from finder.folder import Folder
from finder.store.catalog import FAILED, OK

if TYPE_CHECKING:
    from finder.embed.base import Backbone


class Embedder:
    """The backbone of the library in ``folder``: the recorded one, else ``choice`` (for a new
    library). ``batch_size`` and ``workers`` (decoding threads) are how photos are embedded."""

    def __init__(
        self,
        folder: Folder,
        choice: BackboneChoice,
        *,
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.folder = folder
        self.choice = choice
        self.batch_size = batch_size
        self.workers = workers
        self._backbone: Backbone | None = None  # built by ``backbone()``, then kept

    def check_choice(self, recorded: dict) -> None:
        """Refuse a backbone other than the recorded one, without building anything."""
        check_choice(self.choice, recorded, str(self.folder.dir))

    def local_weights(self) -> str | None:
        """A local weights (or model) file given for a recorded library, else None."""
        c = self.choice
        return c.weights if c.weights not in (None, "imagenet", "none") else None

    def backbone(self) -> Backbone:
        """The backbone that made (or will make) this library's vectors, built on the first
        call and kept. Imports TensorFlow."""
        if self._backbone is not None:
            return self._backbone
        from finder.embed import registry

        recorded = self.folder.recorded_backbone()
        c = self.choice
        if recorded:
            self.check_choice(recorded)
            local = self.local_weights()
            if local is not None and not os.path.isfile(local):
                raise UsageError(f"no such weights file: {local}")
            bb = registry.from_info(
                BackboneInfo.from_dict(recorded),
                weights=os.path.abspath(local) if local else None,
            )
        else:
            weights: Any = c.weights if c.weights is not None else "imagenet"
            if weights == "none":
                weights = None
            elif weights not in ("imagenet", None):
                if not os.path.isfile(weights):
                    raise UsageError(f"no such weights file: {weights}")
                weights = os.path.abspath(weights)
            model = c.model
            if model is not None:
                if not os.path.isfile(model):
                    raise UsageError(f"no such model file: {model}")
                model = os.path.abspath(model)
            bb = registry.build(
                c.name or "vgg16",
                weights=weights,
                model=model,
                layer=c.layer,
                views=c.views or 1,
                precision=check_precision(c.precision),
            )
        if recorded and not same_as(bb.info, recorded):
            raise BackboneMismatch(
                f"the library {self.folder.dir} was indexed with {describe_backbone(recorded)}, "
                f"but that backbone now gives {describe_backbone(bb.info)}"
            )
        self._backbone = bb
        return bb

    def embed(self, items: Iterable[tuple[Any, str]], facts: bool = False, videos: bool = False):
        """``(key, vector or None, reason)`` for each ``(key, path)``, in order; with
        ``videos``, a video's sampled frames and their times (see
        :func:`finder.embed.pipeline.embed_paths`)."""
        from finder.embed.pipeline import embed_paths

        return embed_paths(
            items,
            self.backbone(),
            batch_size=self.batch_size,
            workers=self.workers,
            facts=facts,
            videos=videos,
        )

    def vector_at(self, path: str, seconds: float) -> tuple[np.ndarray, int | None, int | None]:
        """The unit vector of the video at ``path`` at ``seconds``, with its frame's id and the
        video's id: an indexed video's frame nearest that time (from the store, nothing
        decoded), else the frame shown then, decoded and embedded now (ids None)."""
        info = self.folder.require_indexed()
        catalog = self.folder.open_catalog()
        row = catalog.image_by_path(path)
        if row is not None and row.status == OK:
            frames = catalog.frames_of(row.id)
            if not frames:
                raise UsageError(f"{path} is a photo, not a video: no moment to take")
            frame = min(frames, key=lambda f: (abs(f[1] - seconds), f[1]))[0]
            vector = self.folder.open_vectors().get(np.asarray([frame], dtype=np.int64))[0]
            return vector.astype(np.float32), frame, row.id
        from finder.embed.pipeline import embed_moment
        from finder.errors import DecodeError

        try:
            vector, _ = embed_moment(path, seconds, self.backbone())
        except DecodeError as e:
            raise UsageError(f"not a video: {path} ({e})") from None
        out = sync.unit(np.asarray(vector, dtype=np.float32)[None, :])[0]
        if out.shape[0] != int(info["dim"]):
            raise UsageError(f"{path}: the backbone gave a vector of another size")
        return out, None, None

    def vectors_for(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int | None]]:
        """Unit vectors of ``paths``: from the store when indexed, else embedded on the fly
        (which imports TensorFlow), with the id of each that is in the catalog (None when not).
        Raises UsageError naming a file that is not an image."""
        info = self.folder.require_indexed()
        catalog = self.folder.open_catalog()
        out = np.zeros((len(paths), int(info["dim"])), dtype=np.float32)
        ids: list[int | None] = [None] * len(paths)
        todo = []
        known = []
        for k, path in enumerate(paths):
            row = catalog.image_by_path(path)
            if row is not None and row.status != FAILED:
                ids[k] = row.id  # a pending photo's stored vector is stale: embed it anew
            if row is not None and row.status == OK:
                known.append(k)
            else:
                todo.append((k, path))
        if known:
            store = self.folder.open_vectors()
            out[known] = store.get(np.asarray([ids[k] for k in known], dtype=np.int64))
        if todo:
            for k, vector, error in self.embed(todo):
                if vector is None:
                    raise UsageError(f"not an image: {paths[k]} ({error})")
                out[k] = sync.unit(vector[None, :])[0]
        return out, ids
