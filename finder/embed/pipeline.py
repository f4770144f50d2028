"""Paths → vectors: decode in a pool of threads while the backbone embeds, in input order.

Pillow releases the GIL while it decodes and TensorFlow while it runs, so a thread pool keeps
the decoders busy during inference with no copying between processes. Memory stays bounded
whatever the number of items: ``items`` is pulled lazily, and at most ``2 * batch_size`` decodes
(the batch being assembled and the next one) are in flight or waiting at any time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from finder.embed.runtime import cpu_count
from finder.errors import DecodeError
from finder.ingest.decode import load_views_facts

if TYPE_CHECKING:
    from finder.embed.base import Backbone
    from finder.ingest.facts import PhotoFacts

K = TypeVar("K")


def default_workers() -> int:
    """Decode threads: one per core."""
    return cpu_count()


def _decode(path: str, size: tuple[int, int], views: int) -> tuple[np.ndarray, PhotoFacts] | str:
    try:
        return load_views_facts(path, size, views)
    except DecodeError as e:
        return str(e) or "cannot decode"
    except MemoryError:
        return "out of memory while decoding"
    except Exception as e:  # a decoder bug on one odd file must not stop a long run
        return f"unexpected {type(e).__name__} while decoding: {e}".splitlines()[0]


def _embed_views(
    backbone: Backbone, images: list[np.ndarray], views: int, batch_size: int
) -> np.ndarray:
    """Vectors of decoded images, each ``(views, h, w, 3)``: the model's output for one view,
    else the sum of the views' unit vectors."""
    out = backbone.embed(np.concatenate(images), batch_size=batch_size)
    if views == 1:
        return out
    out = out.reshape(len(images), views, -1)
    out /= np.maximum(np.linalg.norm(out, axis=2, keepdims=True), 1e-12)
    return out.sum(axis=1)


def embed_paths(
    items: Iterable[tuple[K, str]],
    backbone: Backbone,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    facts: bool = False,
) -> Iterator[tuple]:
    """Embed the image at each ``(key, path)``; yield ``(key, vector, None)`` or
    ``(key, None, reason)`` for a file that cannot be decoded, one per item, in input order.
    With ``facts``, each item has a fourth element: the photo's ``PhotoFacts`` (date, camera,
    position, size; ``finder.ingest.facts``) read by the same decode, None for a failure.

    Vectors are float32 ``[backbone.info.dim]``, as ``backbone.embed`` returns them (not
    normalised). With ``backbone.info.views`` > 1 an image's vector is the sum of its views'
    unit vectors (test-time augmentation, ``finder.decode.load_views``), and a batch holds
    ``batch_size // views`` images. Results come out per batch, as soon as the batch is embedded.
    ``batch_size`` (images per compiled model call) defaults to ``backbone.batch_size`` (chosen
    per device); ``workers`` (decode threads) to the number of cores. ``progress(n_done)`` is
    called with the running total of items done after each batch. Closing the generator early
    (``break``, ``close()``, Ctrl-C) cancels pending decodes and returns promptly.
    """
    batch_size = int(batch_size or backbone.batch_size)
    workers = int(workers or default_workers())
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be at least 1")
    size = backbone.info.input_size
    views = backbone.info.views
    per_batch = max(1, batch_size // views)  # images a batch; the model sees batch_size inputs
    window = 2 * per_batch  # decodes submitted and not yet collected
    max_pending = 4 * per_batch  # results held back to keep input order (failures included)

    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="finder-decode")
    inflight: deque[tuple[K, Future]] = deque()
    exhausted = False
    done = 0

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(inflight) < window:
            try:
                key, path = next(source)
            except StopIteration:
                exhausted = True
                return
            inflight.append((key, pool.submit(_decode, path, size, views)))

    try:
        while True:
            # Collect, in order, until a full batch of decoded images (or the end).
            pending: list[tuple[K, tuple[np.ndarray, PhotoFacts] | str]] = []
            images: list[np.ndarray] = []
            fill()
            while inflight and len(images) < per_batch and len(pending) < max_pending:
                key, fut = inflight.popleft()
                fill()  # keep the decoders busy while we wait
                res = fut.result()
                pending.append((key, res))
                if not isinstance(res, str):
                    images.append(res[0])
            if not pending:
                return
            vectors = _embed_views(backbone, images, views, batch_size) if images else None
            del images
            i = 0
            for key, res in pending:
                if isinstance(res, str):
                    yield (key, None, res, None) if facts else (key, None, res)
                else:
                    vector = vectors[i].copy()
                    yield (key, vector, None, res[1]) if facts else (key, vector, None)
                    i += 1
            done += len(pending)
            if progress is not None:
                progress(done)
    finally:
        for _, fut in inflight:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
