"""Paths → vectors: decode in a pool of threads while the backbone embeds, in input order.

Pillow and FFmpeg release the GIL while they decode and TensorFlow while it runs, so a thread
pool keeps the decoders busy during inference with no copying between processes. Memory stays
bounded whatever the number of items: ``items`` is pulled lazily, and at most ``2 * batch_size``
decodes (the batch being assembled and the next one) are in flight or waiting at any time, of
which at most one video per decode thread (a video holds up to its cap of frames).

With ``videos``, a path named like a video is read by :func:`finder.ingest.video.load_video`:
its sampled frames join the same batches as photos (a batch is ``batch_size`` images, photos
and frames alike), and its item carries one vector per frame with the frames' times.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from finder.embed.runtime import cpu_count
from finder.errors import DecodeError
from finder.ingest.crawl import is_video_name
from finder.ingest.decode import load_views_facts
from finder.ingest.video import VideoSample, load_frame_at, load_video

if TYPE_CHECKING:
    from finder.embed.base import Backbone
    from finder.ingest.facts import PhotoFacts

K = TypeVar("K")


def default_workers() -> int:
    """Decode threads: one per core."""
    return cpu_count()


def _decode(
    path: str, size: tuple[int, int], views: int, video: bool = False
) -> tuple[np.ndarray, PhotoFacts] | VideoSample | str:
    """A photo's views and facts, a video's sample (with ``video``), or why it failed."""
    try:
        if video:
            return load_video(path, size, views)
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
    """Vectors of decoded images, each ``(views, h, w, 3)`` (a video's frames: ``(frames *
    views, h, w, 3)``), one per image or frame: the model's output for one view, else the
    sum of the views' unit vectors."""
    out = backbone.embed(np.concatenate(images), batch_size=batch_size)
    if views == 1:
        return out
    out = out.reshape(len(out) // views, views, -1)
    out /= np.maximum(np.linalg.norm(out, axis=2, keepdims=True), 1e-12)
    return out.sum(axis=1)


def embed_moment(path: str, seconds: float, backbone: Backbone) -> tuple[np.ndarray, float]:
    """The vector (not normalised) of the frame a video shows at ``seconds``, and that
    frame's own time: a moment of a video that is not indexed (``similar clip.mp4 --at``).
    Raises ``DecodeError`` as ``load_video`` does."""
    views = backbone.info.views
    t, pixels = load_frame_at(path, seconds, backbone.info.input_size, views)
    return _embed_views(backbone, [pixels], views, max(views, 1))[0], t


def _pixels(res: tuple[np.ndarray, PhotoFacts] | VideoSample) -> np.ndarray:
    """The views to embed of a decoded photo or video, ``(images * views, h, w, 3)``."""
    if isinstance(res, tuple):
        return res[0]
    p = res.pixels
    return p.reshape(-1, *p.shape[2:])


def embed_paths(
    items: Iterable[tuple[K, str]],
    backbone: Backbone,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    facts: bool = False,
    videos: bool = False,
) -> Iterator[tuple]:
    """Embed the image at each ``(key, path)``; yield ``(key, vector, None)`` or
    ``(key, None, reason)`` for a file that cannot be decoded, one per item, in input order.
    With ``facts``, each item has a fourth element: the photo's ``PhotoFacts`` (date, camera,
    position, size; ``finder.ingest.facts``) read by the same decode, None for a failure.

    With ``videos``, a path named like a video (``crawl.is_video_name``) is read as one
    (``finder.ingest.video``) and its item is ``(key, vectors, None, facts, times)``: float32
    ``[frames, dim]``, its ``VideoFacts`` (None without ``facts``), float64 ``[frames]``
    seconds; a video that fails is ``(key, None, reason)`` as a photo (with ``facts``, and a
    None fourth element). Without ``videos`` such a path is read as a photo (and fails, "not
    an image").

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
    max_videos = workers  # videos decoding or decoded and not yet collected

    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="finder-decode")
    inflight: deque[tuple[K, bool, Future]] = deque()
    held: tuple[K, str] | None = None  # the next item: a video waiting for a video slot
    video_slots = 0
    exhausted = False
    done = 0

    def fill() -> None:
        nonlocal exhausted, held, video_slots
        while not exhausted and len(inflight) < window:
            if held is None:
                try:
                    held = next(source)
                except StopIteration:
                    exhausted = True
                    return
            key, path = held
            video = videos and is_video_name(path)
            if video and video_slots >= max_videos:
                return
            held = None
            video_slots += video
            inflight.append((key, video, pool.submit(_decode, path, size, views, video)))

    try:
        while True:
            # Collect, in order, until a full batch of decoded images (or the end).
            pending: list[tuple[K, tuple[np.ndarray, PhotoFacts] | VideoSample | str]] = []
            images: list[np.ndarray] = []
            queued = 0  # images (photos and frames) in ``images``, views apart
            fill()
            while inflight and queued < per_batch and len(pending) < max_pending:
                key, video, fut = inflight.popleft()
                res = fut.result()
                video_slots -= video
                fill()  # keep the decoders busy while we wait
                pending.append((key, res))
                if not isinstance(res, str):
                    images.append(_pixels(res))
                    queued += len(images[-1]) // views
            if not pending:
                return
            vectors = _embed_views(backbone, images, views, batch_size) if images else None
            del images
            i = 0
            for key, res in pending:
                if isinstance(res, str):
                    yield (key, None, res, None) if facts else (key, None, res)
                elif isinstance(res, tuple):
                    vector = vectors[i].copy()
                    yield (key, vector, None, res[1]) if facts else (key, vector, None)
                    i += 1
                else:
                    n = len(res.times)
                    found = res.facts if facts else None
                    yield key, vectors[i : i + n].copy(), None, found, res.times
                    i += n
            done += len(pending)
            if progress is not None:
                progress(done)
    finally:
        for _, _, fut in inflight:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
