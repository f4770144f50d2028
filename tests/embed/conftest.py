"""Backbones shared by the tests of tests/embed (built once per session: random weights, or the
real pretrained TFLite model from ../shared)."""

from __future__ import annotations

import pytest

from finder.embed.registry import build
from tests.embed.embed_helpers import TFLITE, _need_shared


@pytest.fixture(scope="session")
def vgg():
    return build("vgg16", weights=None)


@pytest.fixture(scope="session")
def effnet():
    return build("efficientnetv2-b0", weights=None)


@pytest.fixture(scope="session")
def tflite():
    _need_shared()
    return build(model=str(TFLITE))
