"""embed_paths with videos among the photos: a video's frames go through the same batches, its
item carries a vector per frame with the frames' times, order and failures as for photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finder.embed.pipeline import embed_paths
from finder.embed.registry import build
from finder.ingest.decode import load_views
from finder.ingest.video import load_video
from tests.conftest import make_photo
from tests.ingest.videos import Shot, slideshow


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("media")
    photos = [make_photo(d / f"{k}.jpg", k, seed=i) for i, k in enumerate(("red", "blue", "green"))]
    shots = [Shot(p, 2) for p in photos]
    slideshow(d / "clip.mp4", shots)
    slideshow(d / "clip.avi", shots[::-1])
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 100)
    return {
        "red": str(photos[0]),
        "blue": str(photos[1]),
        "green": str(photos[2]),
        "mp4": str(d / "clip.mp4"),
        "avi": str(d / "clip.avi"),
        "broken": str(d / "broken.mp4"),
    }


@pytest.mark.parametrize("views", [1, 2])
def test_videos_share_the_batches_in_order(media, tiny_keras_model: Path, views: int) -> None:
    backbone = build(model=str(tiny_keras_model), layer="pool", views=views)
    size = backbone.info.input_size
    names = ["red", "mp4", "blue", "broken", "avi", "green"]
    items = [(name, media[name]) for name in names]
    progress: list[int] = []
    out = list(
        embed_paths(
            items,
            backbone,
            batch_size=4,
            workers=2,
            facts=True,
            videos=True,
            progress=progress.append,
        )
    )
    assert [o[0] for o in out] == names
    assert progress[-1] == len(names)

    def unit_sum(x: np.ndarray) -> np.ndarray:
        y = backbone.embed(x)
        if views == 1:
            return y
        y = y.reshape(-1, views, y.shape[-1])
        return (y / np.linalg.norm(y, axis=2, keepdims=True)).sum(axis=1)

    for name, (_key, vector, error, facts, *rest) in zip(names, out, strict=True):
        if name == "broken":
            assert vector is None and error and facts is None and not rest
        elif name in ("mp4", "avi"):
            times = rest[0]
            sample = load_video(media[name], size, views)
            assert error is None and vector.shape == (len(sample.times), backbone.info.dim)
            np.testing.assert_allclose(times, sample.times)
            want = unit_sum(sample.pixels.reshape(-1, *sample.pixels.shape[2:]))
            np.testing.assert_allclose(vector, want, rtol=1e-4, atol=1e-5)
            assert facts.duration == pytest.approx(6, abs=0.3)
        else:
            assert error is None and not rest and vector.shape == (backbone.info.dim,)
            want = unit_sum(load_views(media[name], size, views))[0]
            np.testing.assert_allclose(vector, want, rtol=1e-4, atol=1e-5)


def test_without_videos_a_video_is_not_an_image(media, tiny_keras_model: Path) -> None:
    backbone = build(model=str(tiny_keras_model), layer="pool")
    (out,) = embed_paths([(0, media["mp4"])], backbone)
    assert out[1] is None and out[2] == "not an image"


def test_videos_in_flight_are_bounded(media, tiny_keras_model: Path) -> None:
    """Many videos in a row: besides the videos a batch needs, at most one a decode thread is
    decoding (a video holds up to its cap of frames), and the next waits unread."""
    backbone = build(model=str(tiny_keras_model), layer="pool")
    frames = len(load_video(media["avi"], backbone.info.input_size).times)
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield i, media["avi"]

    gen = embed_paths(items(), backbone, batch_size=8, workers=2, videos=True)
    first = next(gen)
    assert first[0] == 0 and first[1].ndim == 2
    assert pulled <= -(-8 // frames) + 2 + 1  # a batch's worth, one a thread, the next
    gen.close()
