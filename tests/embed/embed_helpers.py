"""Shared by the backbone tests: the real data in ../shared, photos and random pixels."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import PHOTOS, SHARED
from tests.conftest import TFLITE_MODEL as TFLITE


def _need_shared() -> None:
    if not TFLITE.is_file() or not (PHOTOS / "pets" / "cat").is_dir():
        pytest.skip(f"shared models/photos not found under {SHARED}")


def _photos(folder: str, n: int, size=(224, 224)) -> np.ndarray:
    from PIL import Image

    paths = sorted((PHOTOS / folder).glob("*.jpg"))[:n]
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize(size, Image.BILINEAR)))
    return np.stack(out)


def _random_pixels(n: int, size=(224, 224), seed: int = 0) -> np.ndarray:
    w, h = size
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
