"""Shared fixtures: the real data in ../shared, small generated photos, and a CLI runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# The tests stop finder's processes as Ctrl-C does (SIGINT). A shell without job control starts
# a background job with SIGINT ignored and its children inherit that; a handler of ours is reset
# to the default in them instead, so a suite run in the background stops them too.
signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINDER_TEST_SHARED") or REPO.parent / "shared")
"""The shared models and photos: ``../shared`` beside the checkout, or ``$FINDER_TEST_SHARED``
(``.ci/run`` points it at a folder that does not exist, to run the suite as a fresh clone does)."""
TFLITE_MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
PHOTOS = SHARED / "photos"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def need_shared(path: Path = SHARED) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the shared models and photos beside the repo), absent here")
    return path


@pytest.fixture(scope="session")
def tflite_model() -> Path:
    return need_shared(TFLITE_MODEL)


@pytest.fixture(scope="session")
def photos() -> Path:
    return need_shared(PHOTOS)


def make_photo(path: Path, kind: str, seed: int, size: tuple[int, int] = (160, 120)) -> Path:
    """A small synthetic photo: ``red`` discs, ``blue`` stripes or ``green`` squares on noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(90, 170, size=(size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(base)
    draw = ImageDraw.Draw(im)
    w, h = size
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(10, 30))
        if kind == "red":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(220, 20 + seed % 30, 30))
        elif kind == "blue":
            draw.rectangle([0, y, w, y + r // 2], fill=(20, 40, 210))
        else:
            draw.rectangle([x, y, x + r, y + r], fill=(30, 200, 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def make_kinds(
    root: Path,
    n: int,
    kinds: tuple[str, ...] = ("red", "blue", "green"),
    size: tuple[int, int] = (160, 120),
) -> Path:
    """``root/KIND/I.jpg``: ``n`` photos of each kind (``make_photo``, seed ``10 * k + i`` for
    the k-th kind's i-th photo, so the same call makes the same photos); returns ``root``."""
    for k, kind in enumerate(kinds):
        for i in range(n):
            make_photo(root / kind / f"{i}.jpg", kind, seed=10 * k + i, size=size)
    return root


@pytest.fixture
def photo_tree(tmp_path: Path) -> Path:
    """photos/{red,blue,green}/N.jpg: 4 of each, plus one PNG."""
    root = make_kinds(tmp_path / "photos", 4)
    make_photo(root / "green" / "extra.png", "green", seed=99)
    return root


@pytest.fixture(scope="session")
def tiny_keras_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained, seeded) Keras model file: the backbone when ../shared is absent.

    Its 16-d "pool" vectors tell the photos apart: centred pixels, a tanh convolution, and the
    means of its 4 channels over the photo's 2x2 quarters. (Averaging ReLU features over the whole
    photo, as a first version did, gave every photo nearly the same direction: two photos of one
    kind at cosine 0.9999+, closer than the float16 the vectors are stored in can tell, so a photo
    embedded afresh did not find its own twin first.)"""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="tanh")(x)
    x = keras.layers.AveragePooling2D(15)(x)
    x = keras.layers.Flatten(name="pool")(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="session")
def model_args(tiny_keras_model: Path) -> list[str]:
    """Backbone flags for a new library: the shared TFLite model, else the tiny Keras model."""
    if TFLITE_MODEL.exists():
        return ["--model", str(TFLITE_MODEL)]
    return ["--model", str(tiny_keras_model), "--layer", "pool"]


class CLI:
    """Runs ``finder`` in-process through typer's runner, stdout and stderr apart."""

    def __init__(self, library: Path) -> None:
        self.library = library

    def __call__(self, *args: str, ok: bool = True):
        from typer.testing import CliRunner

        from finder.show.cli import app

        result = CliRunner().invoke(app, [*args, "--library", str(self.library)])
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"finder {' '.join(args)} exited {result.exit_code}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
            )
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "library")


def run_finder(*args: str, env: dict | None = None, cwd: Path | None = None):
    """``python -m finder ARGS`` in a fresh process (for exit codes, stderr and imports)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "finder", *args],
        capture_output=True,
        env=full_env,
        cwd=cwd,
        timeout=600,
    )
