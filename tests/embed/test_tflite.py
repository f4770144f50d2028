"""finder.embed.tflite: the real pretrained TFLite model from ../shared, and small converted
models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finder.embed.identity import BackboneInfo
from finder.embed.registry import build, from_info
from finder.errors import BackboneError
from tests.embed.embed_helpers import TFLITE, _photos, _random_pixels


def test_tflite_shared_model(tflite):
    info = tflite.info
    assert info.name == "tflite" and info.dim == 1024 and info.input_size == (224, 224)
    assert info.weights == str(TFLITE) and len(info.fingerprint) == 16
    cats = _photos("pets/cat", 4)
    flowers = _photos("flowers17/daisy", 4)
    y = tflite.embed(np.concatenate([cats, flowers]))
    assert y.shape == (8, 1024) and y.dtype == np.float32
    assert (y >= 0).all() and y.std() > 0
    assert not np.allclose(y[0], y[1])
    # the dequantized values lie on the output's quantization grid
    scale, zero = tflite._out_quant
    q = y / scale + zero
    np.testing.assert_allclose(q, np.rint(q), atol=1e-3)
    # a real pretrained embedding: cats are nearer cats than daisies
    u = y / np.linalg.norm(y, axis=1, keepdims=True)
    sim = u @ u.T
    within = (sim[:4, :4].sum() - 4) / 12
    across = sim[:4, 4:].mean()
    assert within > across


def test_tflite_batch_equals_one_at_a_time(tflite):
    x = _photos("pets/dog", 5)
    together = tflite.embed(x)
    alone = np.concatenate([tflite.embed(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_tflite_from_info_same_fingerprint_and_vectors(tflite):
    again = from_info(BackboneInfo.from_dict(json.loads(json.dumps(tflite.info.to_dict()))))
    assert again.info == tflite.info
    x = _photos("pets/cat", 2)
    np.testing.assert_array_equal(again.embed(x), tflite.embed(x))


def test_tflite_float_input_model_fed_raw_rgb(tmp_path):
    """A float-input .tflite is fed float RGB 0..255 unchanged, batched, flattened."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 24, 3), batch_size=1)
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    out = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, out)
    path = tmp_path / "tiny_float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    b = build(model=str(path))
    assert b.info.dim == 6 and b.info.input_size == (24, 32)
    px = _random_pixels(5, (24, 32))
    expected = model.predict(px.astype(np.float32), verbose=0)
    np.testing.assert_allclose(b.embed(px), expected, rtol=1e-5, atol=1e-6)


def test_bad_tflite_file(tmp_path):
    p = tmp_path / "broken.tflite"
    p.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(BackboneError) as e:
        build(model=str(p))
    assert "broken.tflite" in str(e.value) and "\n" not in str(e.value)
