"""Keras backbones: the applications of the registry (VGG16, ResNet50, ...) and ``.keras``/``.h5``
model files, behind compiled fixed-shape calls; and their weights (ImageNet download, local file).

- An application entry of ``finder.embed.registry.BACKBONES`` names its Keras application, its
  ImageNet weights file and preprocessing; :func:`build_application` builds it.
- ``keras-file`` (:func:`build_file`): a model file and a layer name (default: the penultimate
  layer). Input size from the model; it is fed float32 RGB 0..255 unchanged (no preprocessing: a
  model that needs some must carry it as layers). The layer output is flattened per image.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from finder.embed import runtime
from finder.embed.base import Backbone
from finder.embed.identity import BackboneInfo, file_fingerprint, one_line
from finder.embed.registry import RANDOM_FINGERPRINT, RANDOM_SEED
from finder.errors import Arg, BackboneError, WeightsUnavailable

_WEIGHTS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


class KerasBackbone(Backbone):
    """A Keras model (application or file) behind compiled fixed-shape calls."""

    def __init__(
        self,
        info: BackboneInfo,
        model: Any,
        preprocess_fn: Callable[[np.ndarray], np.ndarray] | None,
        *,
        strategy: Any = None,
        gflops: float | None = None,
    ) -> None:
        self.info = info
        self.model = model
        self._preprocess_fn = preprocess_fn
        self._strategy = strategy
        self._unit = strategy.num_replicas_in_sync if strategy is not None else 1
        self._fns: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
        self.batch_size = runtime.default_batch_size()
        self.gflops = gflops

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch).astype(np.float32)
        if self._preprocess_fn is not None:
            x = np.asarray(self._preprocess_fn(x), dtype=np.float32)
        return x

    def _compiled(self, n: int) -> Callable[[np.ndarray], np.ndarray]:
        run = self._fns.get(n)
        if run is None:
            tf = runtime.tf()
            w, h = self.info.input_size
            model = self.model

            def call(x):
                y = model(x, training=False)
                return tf.cast(tf.reshape(y, [tf.shape(y)[0], -1]), tf.float32)

            strategy = self._strategy
            if strategy is None:
                spec = tf.TensorSpec([n, h, w, 3], tf.float32)
                fn = tf.function(call, input_signature=[spec], autograph=False)

                def run(x: np.ndarray) -> np.ndarray:
                    return fn(x).numpy()

            else:  # several devices: each replica runs a contiguous slice of the batch
                replicas = strategy.num_replicas_in_sync
                step = tf.function(lambda xs: strategy.run(call, args=(xs,)), autograph=False)

                def run(x: np.ndarray) -> np.ndarray:
                    parts = np.split(x, replicas)
                    xs = strategy.experimental_distribute_values_from_function(
                        lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group])
                    )
                    ys = strategy.experimental_local_results(step(xs))
                    return np.concatenate([y.numpy() for y in ys])

            self._fns[n] = run
        return run

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._compiled(len(x))(x)


# ----------------------------------------------------------------------------------------------
# Weights


def _imagenet_weights(name: str, ref: tuple[str, str, str]) -> str:
    """Path of the ImageNet weights ``(file name, subdir, md5)`` in Keras's cache, downloading
    them if needed."""
    import keras

    file_name, subdir, md5 = ref
    try:
        # Keras reports the download on stdout: keep stdout for our own output (e.g. JSON), and
        # leave out its "Downloading data from ..." line, said before it knows there is a network
        # (offline, finder's own message is the only line); the progress bar still shows.
        with contextlib.redirect_stdout(_DropLines(sys.stderr, "Downloading data from")):
            return keras.utils.get_file(
                file_name,
                _WEIGHTS_BASE + subdir + "/" + file_name,
                cache_dir=os.environ.get("KERAS_HOME") or None,  # read now, not at Keras import
                cache_subdir="models",
                file_hash=md5,
            )
    except Exception:  # Keras raises a bare Exception when the download fails
        raise WeightsUnavailable(
            f"could not download the ImageNet weights for {name} (no network?); pass ",
            Arg("weights"),
            f" FILE with a local copy of {file_name}",
        ) from None


class _DropLines(io.TextIOBase):
    """A text stream that forwards to ``out`` every line except those starting with ``prefix``."""

    def __init__(self, out: TextIO, prefix: str) -> None:
        self.out, self.prefix, self.line = out, prefix, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.line += text
        while True:
            cut = min(
                (i for i in (self.line.find("\n"), self.line.find("\r")) if i >= 0), default=-1
            )
            if cut < 0:
                break
            head, self.line = self.line[: cut + 1], self.line[cut + 1 :]
            if not head.startswith(self.prefix):
                self.out.write(head)
        if self.line and not self.prefix.startswith(self.line[: len(self.prefix)]):
            self.out.write(self.line)
            self.line = ""
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def _resolve_weights(
    name: str, weights: str | None, ref: tuple[str, str, str]
) -> tuple[str | None, str, str]:
    """→ (path to load or None for random init, recorded weights, fingerprint)."""
    if weights is None or weights == "none":
        return None, "none", RANDOM_FINGERPRINT
    if weights == "imagenet":
        path = _imagenet_weights(name, ref)
        return path, "imagenet", file_fingerprint(path)
    path = os.path.abspath(os.fsdecode(weights))
    if not os.path.isfile(path):
        raise WeightsUnavailable(f"weights file not found: {path}")
    return path, path, file_fingerprint(path)


# ----------------------------------------------------------------------------------------------
# Builders


def _pick_layer(model: Any, layer: str | None, what: str) -> Any:
    import keras

    try:
        out = model.get_layer(layer).output
    except ValueError:
        names = [lay.name for lay in model.layers]
        shown = ", ".join(names[-8:])
        raise BackboneError(
            f"{what} has no layer named {layer!r}; layers include: {shown} "
            f"({len(names)} layers in all)"
        ) from None
    return keras.Model(model.inputs, out)


def _application(keras: Any, application: str, include_top: bool) -> Any:
    make = getattr(keras.applications, application)
    if include_top:
        return make(weights=None, include_top=True)
    return make(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))


def _preprocess_fn(module: str | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """``keras.applications.<module>.preprocess_input``, imported when first used."""
    if module is None:
        return None

    def preprocess(x: np.ndarray) -> np.ndarray:
        import keras

        return getattr(keras.applications, module).preprocess_input(x)

    return preprocess


def build_application(
    *,
    name: str,
    weights: str | None,
    layer: str | None,
    mixed_precision: bool | None,
    application: str,
    precision: str = runtime.FLOAT32,
    imagenet: tuple[str, str, str],
    include_top: bool = False,
    preprocess: str | None = None,
    default_layer: str | None = None,
    **_: Any,
) -> Backbone:
    """A Keras application of the registry (options from its ``BackboneSpec``)."""
    runtime.tf()
    import keras

    path, recorded, fingerprint = _resolve_weights(name, weights, imagenet)
    mixed = bool(runtime.gpus()) if mixed_precision is None else bool(mixed_precision)
    strategy, scope = runtime.strategy_scope()
    policy = runtime.policy_name(precision, mixed_float16=mixed)
    with runtime.keras_policy(policy), scope:
        keras.utils.set_random_seed(RANDOM_SEED)  # weights=None: the same in every process
        try:
            model = _application(keras, application, include_top)
            if path is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # one line per layer not loaded
                    model.load_weights(path)
        except WeightsUnavailable:
            raise
        except (ValueError, OSError, KeyError) as e:
            raise WeightsUnavailable(
                f"cannot load weights {path} into {name}: {one_line(e)}"
            ) from None
        chosen = layer or default_layer
        if chosen is not None and chosen != model.layers[-1].name:
            model = _pick_layer(model, chosen, name)
    if chosen is not None and chosen == model.layers[-1].name and layer is None:
        chosen = default_layer
    h, w = model.input_shape[1:3]
    dim = int(np.prod(model.output_shape[1:]))
    info = BackboneInfo(
        name, chosen, dim, recorded, fingerprint, (int(w), int(h)), precision=precision
    )
    return KerasBackbone(info, model, _preprocess_fn(preprocess), strategy=strategy)


def build_file(*, model: str | None, layer: str | None, **_: Any) -> Backbone:
    """``keras-file``: a layer of a ``.keras``/``.h5`` model file."""
    if not model:
        raise BackboneError(
            "the keras-file backbone needs a model file: ", Arg("model"), " FILE.keras"
        )
    path = os.path.abspath(os.fsdecode(model))
    if not os.path.isfile(path):
        raise BackboneError(f"model file not found: {path}")
    runtime.tf()
    import keras

    try:
        full = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise BackboneError(f"cannot load Keras model {path}: {one_line(e)}") from None
    if not hasattr(full, "layers") or len(full.layers) < 2:
        raise BackboneError(f"Keras model {path} has too few layers to pick an embedding from")
    if layer is None:
        layer = full.layers[-2].name
    net = _pick_layer(full, layer, f"Keras model {os.path.basename(path)}")
    shape = net.input_shape
    if isinstance(shape, list):
        raise BackboneError(f"Keras model {path} has several inputs; need one image input")
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[2] is None:
        raise BackboneError(
            f"Keras model {path} takes input of shape {shape}; need [n, h, w, 3] with fixed h, w"
        )
    dim = int(np.prod(net.output_shape[1:]))
    info = BackboneInfo(
        "keras-file", layer, dim, path, file_fingerprint(path), (int(shape[2]), int(shape[1]))
    )
    return KerasBackbone(info, net, None, strategy=None)
