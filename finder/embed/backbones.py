"""A small registry of image embedding backbones: name → backbone.

Every backbone takes uint8 RGB pixels ``[n, h, w, 3]`` at its ``info.input_size`` and returns
float32 vectors ``[n, dim]``. TensorFlow and Keras are imported only inside functions, so that
commands that embed nothing never pay their start-up cost.

Entries (see ``BACKBONES``):

- ``vgg16`` (default): Keras VGG16 with its top, output of layer ``fc1`` (4096-d, post-ReLU),
  ``keras.applications.vgg16.preprocess_input`` (caffe mode: RGB→BGR, ImageNet mean subtracted).
- ``resnet50``: Keras ResNet50, global average pool (2048-d), caffe preprocessing.
- ``efficientnetv2-b0``, ``mobilenetv3-large``: light Keras models, global average pool; their
  preprocessing is inside the model (it is fed float RGB 0..255).
- ``tflite``: a ``.tflite`` model file. Input size and quantization are read from the interpreter.
  A uint8-input model is fed raw RGB 0..255 (its input quantization does its own scaling); a
  float-input model is fed float32 RGB 0..255 unchanged (no normalisation: a model that expects
  another range must carry its own rescaling). A uint8 output is dequantized with
  ``(q - zero_point) * scale``; the output is flattened per image.
- ``keras-file``: a ``.keras``/``.h5`` model file and a layer name (default: the penultimate
  layer). Input size from the model; it is fed float32 RGB 0..255 unchanged (no preprocessing: a
  model that needs some must carry it as layers). The layer output is flattened per image.

Inference runs through a compiled function (``tf.function`` with a fixed input signature) on
batches of fixed shape: a batch of ``batch_size`` images, and for a smaller remainder the next
power of two up to ``batch_size``, padded by repeating the last image. So the function is traced
at most ``log2(batch_size) + 1`` times, never retraced per call, and a single query image does not
pay for a whole batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from finder.errors import BackboneError, WeightsUnavailable
from finder.ingest.decode import check_views

DEFAULT_BACKBONE = "vgg16"
RANDOM_SEED = 0
RANDOM_FINGERPRINT = f"random-seed{RANDOM_SEED}"

CPU_BATCH_SIZE = 32
GPU_BATCH_SIZE = 128  # per GPU

_WEIGHTS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class BackboneInfo:
    """What a library records about the backbone that made its vectors."""

    name: str
    layer: str | None
    dim: int
    weights: str  # "imagenet", "none", or an absolute file path
    fingerprint: str
    input_size: tuple[int, int]  # (width, height)
    views: int = 1  # test-time views averaged into one vector (finder.decode.load_views)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneInfo:
        try:
            w, h = d["input_size"]
            return cls(
                name=str(d["name"]),
                layer=None if d.get("layer") is None else str(d["layer"]),
                dim=int(d["dim"]),
                weights=str(d["weights"]),
                fingerprint=str(d["fingerprint"]),
                input_size=(int(w), int(h)),
                views=int(d.get("views", 1)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BackboneError(f"bad backbone record {d!r}: {e}") from None

    def same_as(self, other: BackboneInfo) -> bool:
        """True when vectors from ``self`` and ``other`` may be mixed."""
        return (self.name, self.layer, self.dim, self.fingerprint, self.views) == (
            other.name,
            other.layer,
            other.dim,
            other.fingerprint,
            other.views,
        )

    def describe(self) -> str:
        layer = f":{self.layer}" if self.layer else ""
        views = f", {self.views} views" if self.views > 1 else ""
        return (
            f"{self.name}{layer} ({self.dim}-d, weights {self.weights}, {self.fingerprint}{views})"
        )


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: plain data plus the function that builds it."""

    name: str
    dim: int | None  # None: depends on the model file / layer
    input_size: tuple[int, int] | None  # (width, height); None: read from the model file
    gflops: float | None  # per image, multiply-add = 2 FLOPs; None: unknown
    description: str
    builder: Callable[..., Backbone] = field(repr=False, compare=False)


# ----------------------------------------------------------------------------------------------
# TensorFlow set-up (once per process)

_tf_lock = threading.Lock()
_tf_ready = False


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes on file descriptor 2 (TensorFlow's start-up chatter:
    oneDNN and CUDA notices, "failed call to cuInit" on a machine without a GPU).
    Python exceptions still propagate. FINDER_TF_LOGS=1 keeps everything."""
    if os.environ.get("FINDER_TF_LOGS"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        yield
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        _flush_c_stdio()  # what native code buffered goes to /dev/null too
        os.dup2(saved, 2)
        os.close(saved)


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _tf():
    """Import TensorFlow, and configure threading and GPU memory growth the first time."""
    global _tf_ready
    if _tf_ready:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _tf_lock, quiet_native_stderr():
        import tensorflow as tf

        if not _tf_ready:
            try:
                # Every core on each big op (a CNN is a chain of them), two ops at a time.
                tf.config.threading.set_intra_op_parallelism_threads(cpu_count())
                tf.config.threading.set_inter_op_parallelism_threads(2)
            except RuntimeError:
                pass  # the runtime was already initialised by someone else: keep theirs
            for gpu in tf.config.list_physical_devices("GPU"):
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except (RuntimeError, ValueError):
                    pass
            # Each backbone traces one function per fixed batch shape, once (tested); TF's
            # heuristic counts several backbones' functions as "retracing" and warns wrongly.
            tf.get_logger().addFilter(_NoRetracingNotice())
            _tf_ready = True
    return tf


class _NoRetracingNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def gpus() -> list:
    """The visible GPUs (physical devices); empty on a CPU-only machine."""
    return _tf().config.list_physical_devices("GPU")


def default_batch_size() -> int:
    """Recommended images per compiled call on this device."""
    n = len(gpus())
    return GPU_BATCH_SIZE * n if n else CPU_BATCH_SIZE


# ----------------------------------------------------------------------------------------------
# Backbones


def _buckets(batch_size: int, unit: int = 1) -> list[int]:
    """The batch shapes used: unit, 2*unit, 4*unit, ... below batch_size, then batch_size."""
    out, b = [], unit
    while b < batch_size:
        out.append(b)
        b *= 2
    out.append(batch_size)
    return out


class Backbone:
    """Base class: subclasses provide ``info``, ``preprocess`` and ``_run(batch of fixed n)``."""

    info: BackboneInfo
    batch_size: int
    gflops: float | None = None
    _unit: int = 1  # batch shapes are multiples of this (the number of replicas)

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        """uint8 ``[n, h, w, 3]`` → float32: exactly what the model is fed."""
        raise NotImplementedError

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed batch whose size is one of ``_buckets``."""
        raise NotImplementedError

    def _check(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        w, h = self.info.input_size
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise BackboneError(
                f"{self.info.name} expects images of shape [n, {h}, {w}, 3], got {batch.shape}"
            )
        if batch.dtype != np.uint8:
            raise BackboneError(f"{self.info.name} expects uint8 pixels, got {batch.dtype}")
        return batch

    def embed(self, batch: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """uint8 ``[n, h, w, 3]`` (any n ≥ 1) → float32 ``[n, dim]``.

        Runs in chunks of ``batch_size`` (default ``self.batch_size``) images, the last one padded
        to the next fixed shape.
        """
        batch = self._check(batch)
        n = len(batch)
        out = np.empty((n, self.info.dim), dtype=np.float32)
        unit = self._unit
        full = max(unit, -(-int(batch_size or self.batch_size) // unit) * unit)
        buckets = _buckets(full, unit)
        start = 0
        while start < n:
            chunk = batch[start : start + full]
            m = len(chunk)
            size = next(b for b in buckets if b >= m)
            if size > m:  # pad with copies of the last image: fixed shapes, no retracing
                pad = np.repeat(chunk[-1:], size - m, axis=0)
                chunk = np.concatenate([chunk, pad])
            y = self._run(self.preprocess(chunk))
            out[start : start + m] = y[:m].reshape(m, -1)
            start += m
        return out

    def __repr__(self) -> str:
        return f"<Backbone {self.info.describe()} batch={self.batch_size}>"


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
        self.batch_size = default_batch_size()
        self.gflops = gflops

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch).astype(np.float32)
        if self._preprocess_fn is not None:
            x = np.asarray(self._preprocess_fn(x), dtype=np.float32)
        return x

    def _compiled(self, n: int) -> Callable[[np.ndarray], np.ndarray]:
        run = self._fns.get(n)
        if run is None:
            tf = _tf()
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


class TFLiteBackbone(Backbone):
    """A .tflite model file run by the TFLite interpreter (ai-edge-litert when installed)."""

    def __init__(self, path: str) -> None:
        Interpreter = _interpreter_class()
        try:
            with warnings.catch_warnings(), quiet_native_stderr():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                self._interp = Interpreter(model_path=path, num_threads=cpu_count())
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackboneError(f"cannot load TFLite model {path}: {_one_line(e)}") from None
        ins = self._interp.get_input_details()
        outs = self._interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise BackboneError(
                f"TFLite model {path} has {len(ins)} inputs and {len(outs)} outputs; "
                "an embedding model needs exactly one of each"
            )
        shape = [int(s) for s in ins[0]["shape"]]
        if len(shape) != 4 or shape[3] != 3:
            raise BackboneError(
                f"TFLite model {path} takes input of shape {shape}; need [1, h, w, 3] RGB"
            )
        self._in_index = ins[0]["index"]
        self._out_index = outs[0]["index"]
        self._in_dtype = np.dtype(ins[0]["dtype"])
        if self._in_dtype not in (np.uint8, np.int8, np.float32):
            raise BackboneError(f"TFLite model {path} has unsupported input type {self._in_dtype}")
        self._in_quant = ins[0].get("quantization", (0.0, 0))
        self._out_dtype = np.dtype(outs[0]["dtype"])
        self._out_quant = outs[0].get("quantization", (0.0, 0))
        dim = int(np.prod(outs[0]["shape"][1:]))
        self._batched = 1  # current leading dimension of the interpreter's input
        self._invoked = False
        self._can_resize = True
        self.batch_size = CPU_BATCH_SIZE
        self.info = BackboneInfo(
            name="tflite",
            layer=None,
            dim=dim,
            weights=path,
            fingerprint=file_fingerprint(path),
            input_size=(shape[2], shape[1]),
        )

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        # The model's input quantization does its own scaling: it is fed raw RGB 0..255.
        return np.asarray(batch).astype(np.float32)

    def _to_input(self, x: np.ndarray) -> np.ndarray:
        if self._in_dtype == np.uint8:
            return np.clip(np.rint(x), 0, 255).astype(np.uint8)
        if self._in_dtype == np.int8:  # int8 input: quantize 0..255 with the model's parameters
            scale, zero = self._in_quant
            if not scale:
                return np.clip(np.rint(x) - 128, -128, 127).astype(np.int8)
            return np.clip(np.rint(x / scale + zero), -128, 127).astype(np.int8)
        return x.astype(np.float32)

    def _from_output(self, y: np.ndarray) -> np.ndarray:
        y = y.reshape(len(y), -1)
        if self._out_dtype in (np.uint8, np.int8):
            scale, zero = self._out_quant
            if scale:
                return (y.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        return y.astype(np.float32)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if self._batched == n and self._invoked:
            self._interp.set_tensor(self._in_index, x)
            self._interp.invoke()
            return self._interp.get_tensor(self._out_index).copy()
        # a new shape (re)applies the XNNPACK delegate, which says so on stderr
        with quiet_native_stderr():
            if self._batched != n:
                self._interp.resize_tensor_input(self._in_index, [n, *x.shape[1:]], strict=False)
                self._interp.allocate_tensors()
                self._batched = n
            self._interp.set_tensor(self._in_index, x)
            self._interp.invoke()
            self._invoked = True
        return self._interp.get_tensor(self._out_index).copy()

    def _run(self, x: np.ndarray) -> np.ndarray:
        x = self._to_input(x)
        if self._can_resize and len(x) > 1:
            try:
                y = self._invoke(x)
                if len(y) == len(x):
                    return self._from_output(y)
            except (ValueError, RuntimeError):
                pass
            self._can_resize = False  # this model cannot take a batch: one image at a time
            self._invoke_reset()
        return np.concatenate(
            [self._from_output(self._invoke(x[i : i + 1])) for i in range(len(x))]
        )

    def _invoke_reset(self) -> None:
        if self._batched != 1:
            self._interp.resize_tensor_input(
                self._in_index, [1, self.info.input_size[1], self.info.input_size[0], 3]
            )
            self._interp.allocate_tensors()
            self._batched = 1


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
    except ImportError:
        Interpreter = _tf().lite.Interpreter
    return Interpreter


# ----------------------------------------------------------------------------------------------
# Weights


_fingerprints: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str) -> str:
    """First 16 hex digits of the sha256 of a file (cached per path, size and mtime)."""
    h = hashlib.sha256()
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if key in _fingerprints:
            return _fingerprints[key]
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise WeightsUnavailable(f"cannot read {path}: {e.strerror or e}") from None
    _fingerprints[key] = h.hexdigest()[:16]
    return _fingerprints[key]


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


@dataclass(frozen=True)
class _ImagenetFile:
    file_name: str
    subdir: str
    file_hash: str  # md5, as Keras checks it


def _imagenet_weights(name: str, ref: _ImagenetFile) -> str:
    """Path of the ImageNet weights in Keras's cache, downloading them if needed."""
    import keras

    try:
        # Keras reports the download on stdout: keep stdout for our own output (e.g. JSON)
        with contextlib.redirect_stdout(sys.stderr):
            return keras.utils.get_file(
                ref.file_name,
                _WEIGHTS_BASE + ref.subdir + "/" + ref.file_name,
                cache_dir=os.environ.get("KERAS_HOME") or None,  # read now, not at Keras import
                cache_subdir="models",
                file_hash=ref.file_hash,
            )
    except Exception:  # Keras raises a bare Exception when the download fails
        raise WeightsUnavailable(
            f"could not download the ImageNet weights for {name} (no network?); "
            f"pass --weights FILE with a local copy of {ref.file_name}"
        ) from None


def _resolve_weights(
    name: str, weights: str | None, ref: _ImagenetFile
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


class _policy:
    """Set the Keras dtype policy for model construction, and restore it afterwards."""

    def __init__(self, mixed: bool) -> None:
        self.mixed = mixed

    def __enter__(self):
        import keras

        self.saved = keras.mixed_precision.global_policy()
        if self.mixed:
            keras.mixed_precision.set_global_policy("mixed_float16")
        return self

    def __exit__(self, *exc) -> None:
        import keras

        keras.mixed_precision.set_global_policy(self.saved)


def _replica_devices() -> list[str]:
    """Devices to replicate the model on: every visible GPU when there are several."""
    tf = _tf()
    names = [d.name for d in tf.config.list_logical_devices("GPU")]
    return names if len(names) > 1 else []


def _strategy_scope():
    """(strategy or None, context manager): MirroredStrategy over several GPUs."""
    import contextlib

    devices = _replica_devices()
    if devices:
        strategy = _tf().distribute.MirroredStrategy(devices)
        return strategy, strategy.scope()
    return None, contextlib.nullcontext()


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


def _keras_app(
    name: str,
    make: Callable[[Any, str | None], Any],
    preprocess: Callable[[np.ndarray], np.ndarray] | None,
    ref: _ImagenetFile,
    default_layer: str | None,
    gflops: float,
):
    """A builder for a Keras application: ``make(keras, weights_path_or_None) -> model``."""

    def builder(
        *, weights: str | None, layer: str | None, mixed_precision: bool | None, **_: Any
    ) -> Backbone:
        _tf()
        import keras

        path, recorded, fingerprint = _resolve_weights(name, weights, ref)
        mixed = bool(gpus()) if mixed_precision is None else bool(mixed_precision)
        strategy, scope = _strategy_scope()
        with _policy(mixed), scope:
            keras.utils.set_random_seed(RANDOM_SEED)  # weights=None: the same in every process
            try:
                model = make(keras, None)
                if path is not None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # one line per layer not loaded
                        model.load_weights(path)
            except WeightsUnavailable:
                raise
            except (ValueError, OSError, KeyError) as e:
                raise WeightsUnavailable(
                    f"cannot load weights {path} into {name}: {_one_line(e)}"
                ) from None
            chosen = layer or default_layer
            if chosen is not None and chosen != model.layers[-1].name:
                model = _pick_layer(model, chosen, name)
        if chosen is not None and chosen == model.layers[-1].name and layer is None:
            chosen = default_layer
        h, w = model.input_shape[1:3]
        dim = int(np.prod(model.output_shape[1:]))
        info = BackboneInfo(name, chosen, dim, recorded, fingerprint, (int(w), int(h)))
        return KerasBackbone(info, model, preprocess, strategy=strategy, gflops=gflops)

    return builder


def _vgg16(keras, _):
    return keras.applications.VGG16(weights=None, include_top=True)


def _resnet50(keras, _):
    return keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3)
    )


def _effv2b0(keras, _):
    return keras.applications.EfficientNetV2B0(
        weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3)
    )


def _mnv3l(keras, _):
    return keras.applications.MobileNetV3Large(
        weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3)
    )


def _vgg_pre(x: np.ndarray) -> np.ndarray:
    import keras

    return keras.applications.vgg16.preprocess_input(x)


def _resnet_pre(x: np.ndarray) -> np.ndarray:
    import keras

    return keras.applications.resnet50.preprocess_input(x)


def _build_tflite(*, model: str | None, layer: str | None, **_: Any) -> Backbone:
    if not model:
        raise BackboneError("the tflite backbone needs a model file: --model FILE.tflite")
    if layer:
        raise BackboneError("a TFLite model has one output; --layer does not apply to it")
    path = os.path.abspath(os.fsdecode(model))
    if not os.path.isfile(path):
        raise BackboneError(f"model file not found: {path}")
    return TFLiteBackbone(path)


def _build_keras_file(*, model: str | None, layer: str | None, **_: Any) -> Backbone:
    if not model:
        raise BackboneError("the keras-file backbone needs a model file: --model FILE.keras")
    path = os.path.abspath(os.fsdecode(model))
    if not os.path.isfile(path):
        raise BackboneError(f"model file not found: {path}")
    _tf()
    import keras

    try:
        full = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise BackboneError(f"cannot load Keras model {path}: {_one_line(e)}") from None
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


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        "vgg16",
        4096,
        (224, 224),
        30.9,
        "VGG16 fc1 (4096-d), ImageNet; the default: best few-shot features, slowest",
        _keras_app(
            "vgg16",
            _vgg16,
            _vgg_pre,
            _ImagenetFile(
                "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                "vgg16",
                "64373286793e3c8b2b4e3219cbf3544b",
            ),
            "fc1",
            30.9,
        ),
    ),
    "resnet50": BackboneSpec(
        "resnet50",
        2048,
        (224, 224),
        7.7,
        "ResNet50 global average pool (2048-d), ImageNet",
        _keras_app(
            "resnet50",
            _resnet50,
            _resnet_pre,
            _ImagenetFile(
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "resnet",
                "4d473c1dd8becc155b73f8504c6f6626",
            ),
            None,
            7.7,
        ),
    ),
    "efficientnetv2-b0": BackboneSpec(
        "efficientnetv2-b0",
        1280,
        (224, 224),
        1.4,
        "EfficientNetV2-B0 global average pool (1280-d), ImageNet; light",
        _keras_app(
            "efficientnetv2-b0",
            _effv2b0,
            None,
            _ImagenetFile(
                "efficientnetv2-b0_notop.h5", "efficientnet_v2", "893217f2bb855e2983157299931e43ff"
            ),
            None,
            1.4,
        ),
    ),
    "mobilenetv3-large": BackboneSpec(
        "mobilenetv3-large",
        960,
        (224, 224),
        0.44,
        "MobileNetV3-Large global average pool (960-d), ImageNet; lightest",
        _keras_app(
            "mobilenetv3-large",
            _mnv3l,
            None,
            _ImagenetFile(
                "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                "mobilenet_v3",
                "07fb09a5933dd0c8eaafa16978110389",
            ),
            None,
            0.44,
        ),
    ),
    "tflite": BackboneSpec(
        "tflite",
        None,
        None,
        None,
        "a .tflite embedding model file (--model FILE.tflite); size and quantization from the file",
        _build_tflite,
    ),
    "keras-file": BackboneSpec(
        "keras-file",
        None,
        None,
        None,
        "a .keras/.h5 model file (--model FILE, --layer NAME, default the penultimate layer)",
        _build_keras_file,
    ),
}


def build(
    name: str | None = DEFAULT_BACKBONE,
    *,
    weights: str | None = "imagenet",
    model: str | None = None,
    layer: str | None = None,
    mixed_precision: bool | None = None,
    views: int = 1,
) -> Backbone:
    """Build a backbone by registry name, or from a model file.

    ``model`` ending in ``.tflite`` selects ``tflite``; ``.keras``/``.h5`` selects ``keras-file``
    (then ``weights`` is ignored). ``weights``: ``"imagenet"`` (downloaded into Keras's cache;
    :class:`WeightsUnavailable` when that fails), ``None``/``"none"`` (random init, seeded so
    that every process builds the same network), or a path to a local weights file.
    ``mixed_precision`` (Keras applications only; model files run as saved): None = on iff a
    GPU is present; True/False force it. Compute is then float16, the vectors float32.
    ``views`` (1, 2 or 4): test-time views of each image averaged into its vector (see
    ``finder.decode.load_views``; recorded in ``info``, applied by ``finder.pipeline``).
    """
    check_views(views)
    if model is not None:
        model = os.fsdecode(model)
        low = model.lower()
        if low.endswith(".tflite"):
            file_kind = "tflite"
        elif low.endswith((".keras", ".h5", ".hdf5")):
            file_kind = "keras-file"
        else:
            raise BackboneError(
                f"unknown model file type: {model} (expected .tflite, .keras or .h5)"
            )
        if name not in (None, file_kind, DEFAULT_BACKBONE):
            raise BackboneError(f"--model {os.path.basename(model)} is a {file_kind}, not {name}")
        name = file_kind
    name = name or DEFAULT_BACKBONE
    spec = BACKBONES.get(name)
    if spec is None:
        raise BackboneError(f"unknown backbone {name!r}; choices: {', '.join(BACKBONES)}")
    if isinstance(weights, os.PathLike):
        weights = os.fsdecode(weights)
    backbone = spec.builder(
        weights=weights, model=model, layer=layer, mixed_precision=mixed_precision
    )
    if views != 1:
        backbone.info = replace(backbone.info, views=views)
    return backbone


def from_info(
    info: BackboneInfo,
    *,
    weights: str | None = None,
    mixed_precision: bool | None = None,
) -> Backbone:
    """Rebuild the backbone a library recorded; refuse when its weights have changed.

    ``weights`` overrides where the weights (or the model file) are read from, e.g. a local copy
    of the ImageNet weights when there is no network: its fingerprint must match the record.
    """
    source = weights or info.weights
    if info.name in ("tflite", "keras-file"):
        backbone = build(info.name, model=source, layer=info.layer, views=info.views)
    else:
        backbone = build(
            info.name,
            weights=None if source == "none" else source,
            layer=info.layer,
            mixed_precision=mixed_precision,
            views=info.views,
        )
    if not backbone.info.same_as(info):
        raise BackboneError(
            f"the backbone recorded as {info.describe()} now builds as "
            f"{backbone.info.describe()}; its weights or model file changed"
        )
    return backbone
