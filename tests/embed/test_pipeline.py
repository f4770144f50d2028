"""finder.pipeline.embed_paths over real photos with real models."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from finder.embed.pipeline import embed_paths
from finder.embed.registry import build
from finder.ingest.decode import load_rgb
from tests.conftest import PHOTOS, SHARED
from tests.conftest import TFLITE_MODEL as TFLITE


@pytest.fixture(scope="module")
def photos() -> list[str]:
    paths = sorted(str(p) for p in (PHOTOS / "pets").glob("*/*.jpg"))
    paths += sorted(str(p) for p in (PHOTOS / "flowers17").glob("*/*.jpg"))
    if len(paths) < 40 or not TFLITE.is_file():
        pytest.skip(f"shared photos/models not found under {SHARED}")
    return paths[::7][:40]


@pytest.fixture(scope="module")
def effnet():
    b = build("efficientnetv2-b0", weights=None)
    b.batch_size = 4
    return b


@pytest.fixture(scope="module")
def tflite(photos):
    b = build(model=str(TFLITE))
    b.batch_size = 4
    return b


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    (d / "text.jpg").write_text("this is not a photo\n")
    (d / "empty.jpg").write_bytes(b"")
    return {
        "text": str(d / "text.jpg"),
        "empty": str(d / "empty.jpg"),
        "missing": str(d / "missing.jpg"),
        "dir": str(d),
    }


def _one_at_a_time(backbone, paths):
    return np.concatenate(
        [backbone.embed(load_rgb(p, backbone.info.input_size)[None]) for p in paths]
    )


@pytest.mark.parametrize("which", ["effnet", "tflite"])
def test_every_batch_size_matches_one_at_a_time(which, request, photos):
    backbone = request.getfixturevalue(which)
    bs = backbone.batch_size
    paths = photos[: bs + 1]
    alone = _one_at_a_time(backbone, paths)
    for n in range(1, bs + 2):  # 1 .. batch_size+1: padded last batches and a full one
        out = list(embed_paths(((i, p) for i, p in enumerate(paths[:n])), backbone, workers=2))
        assert [k for k, _, _ in out] == list(range(n))
        assert all(err is None for _, _, err in out)
        got = np.stack([v for _, v, _ in out])
        assert got.dtype == np.float32 and got.shape == (n, backbone.info.dim)
        np.testing.assert_allclose(got, alone[:n], rtol=1e-4, atol=1e-5)


def test_bad_files_reported_in_order_and_run_continues(tflite, photos, bad_files):
    items = []
    for i, p in enumerate(photos[:10]):
        items.append((f"good{i}", p))
        if i % 3 == 0:
            kind = list(bad_files)[i // 3 % len(bad_files)]
            items.append((f"bad-{kind}-{i}", bad_files[kind]))
    progress: list[int] = []
    out = list(embed_paths(items, tflite, batch_size=3, workers=3, progress=progress.append))
    assert [k for k, _, _ in out] == [k for k, _ in items]
    expected = _one_at_a_time(tflite, photos[:10])
    j = 0
    for key, vec, err in out:
        if key.startswith("bad"):
            assert vec is None and isinstance(err, str) and err and "\n" not in err
        else:
            assert err is None and vec.shape == (1024,)
            np.testing.assert_allclose(vec, expected[j], atol=1e-5)
            j += 1
    assert j == 10
    assert progress == sorted(progress) and progress[-1] == len(items)


def test_only_bad_files(tflite, bad_files):
    items = [(i, bad_files["missing"]) for i in range(50)]
    out = list(embed_paths(items, tflite, batch_size=4))
    assert [k for k, _, _ in out] == list(range(50))
    assert all(v is None and e for _, v, e in out)


def test_items_are_consumed_lazily(tflite, photos):
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield i, photos[i % len(photos)]

    gen = embed_paths(items(), tflite, batch_size=4, workers=2)
    key, vec, err = next(gen)
    assert key == 0 and err is None
    at_first = pulled
    assert at_first <= 3 * 4  # a bounded read-ahead, not the whole iterable
    for _ in range(20):
        next(gen)
    assert pulled <= 21 + 3 * 4
    gen.close()


def test_early_close_stops_the_pool(tflite, photos):
    gen = embed_paths(((i, photos[i % len(photos)]) for i in range(10_000)), tflite, batch_size=4)
    next(gen)
    t = time.monotonic()
    gen.close()
    assert time.monotonic() - t < 10
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not [th for th in threading.enumerate() if th.name.startswith("finder-decode")]:
            break
        time.sleep(0.05)
    assert not [th for th in threading.enumerate() if th.name.startswith("finder-decode")]


def test_empty_input(tflite):
    assert list(embed_paths([], tflite)) == []


def test_default_batch_size_from_backbone(effnet, photos):
    progress: list[int] = []
    out = list(embed_paths(enumerate(photos[:9]), effnet, progress=progress.append))
    assert len(out) == 9
    assert progress == [4, 8, 9]  # one call per batch of backbone.batch_size


def test_ctrl_c_does_not_hang(photos):
    """SIGINT while a long run is embedding: the process ends promptly (no stuck pool)."""
    import signal
    import subprocess
    import sys

    code = f"""
import sys
from finder.embed.registry import build
from finder.embed.pipeline import embed_paths
paths = {photos[:10]!r}
b = build(model={str(TFLITE)!r})
for i, (k, v, e) in enumerate(embed_paths(((i, paths[i % 10]) for i in range(10**7)), b)):
    if i == 0:
        print("running", flush=True)
"""
    repo = Path(__file__).resolve().parents[2]
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.readline().strip() == "running", p.stderr.read()[-2000:]
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
            pytest.fail("the process did not end within 30 s of SIGINT")
    assert p.returncode != 0
    assert "KeyboardInterrupt" in p.stderr.read()


def test_views_sum_the_unit_vectors_of_each_view(tmp_path, tiny_keras_model) -> None:
    """With 2 or 4 views an image's vector is the sum of its views' unit vectors, whatever the
    batch boundaries (3 images with batch size 4 and 2 views: two model batches)."""
    from finder.ingest.decode import load_views
    from tests.conftest import make_photo

    paths = [str(make_photo(tmp_path / f"{i}.jpg", "blue", seed=i)) for i in range(3)]
    for views in (2, 4):
        b = build(model=str(tiny_keras_model), layer="pool", views=views)
        assert b.info.views == views and "views" in b.info.describe()
        got = [v for _, v, err in embed_paths(enumerate(paths), b, batch_size=4) if err is None]
        assert len(got) == 3
        for p, v in zip(paths, got, strict=True):
            out = b.embed(load_views(p, b.info.input_size, views))
            want = (out / np.linalg.norm(out, axis=1, keepdims=True)).sum(axis=0)
            np.testing.assert_allclose(v, want, rtol=1e-4, atol=1e-5)
        plain = build(model=str(tiny_keras_model), layer="pool")
        assert not b.info.same_as(plain.info)  # vectors of another view count never mix
