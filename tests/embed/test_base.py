"""finder.embed.base: the fixed-shape batches every backbone runs on (on a real Keras model
with random weights)."""

from __future__ import annotations

import numpy as np
import pytest

from finder.errors import BackboneError
from tests.embed.embed_helpers import _random_pixels


def test_embed_rejects_wrong_shape(effnet):
    with pytest.raises(BackboneError, match="224"):
        effnet.embed(_random_pixels(1, (100, 100)))


def test_padded_batches_match_one_at_a_time(effnet):
    saved = effnet.batch_size
    effnet.batch_size = 4
    try:
        x = _random_pixels(7, seed=11)
        alone = np.concatenate([effnet.embed(x[i : i + 1]) for i in range(7)])
        for n in range(1, 8):  # full batches, padded remainders, several chunks
            np.testing.assert_allclose(effnet.embed(x[:n]), alone[:n], rtol=1e-4, atol=1e-5)
        assert set(effnet._fns) <= {1, 2, 4}  # fixed shapes only
        for n in range(1, 8):  # again: no shape is traced twice
            effnet.embed(x[:n])
        for run in effnet._fns.values():
            (fn,) = [
                c.cell_contents
                for c in run.__closure__
                if hasattr(c.cell_contents, "experimental_get_tracing_count")
            ]
            assert fn.experimental_get_tracing_count() == 1
    finally:
        effnet.batch_size = saved
