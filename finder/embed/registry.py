"""A small registry of image embedding backbones, and backbone identity, in one place.

Every backbone takes uint8 RGB pixels ``[n, h, w, 3]`` at its ``info.input_size`` and returns
float32 vectors ``[n, dim]``. This module is plain data and imports neither TensorFlow nor
Keras: a registry entry names its builder (``finder.embed.keras``, ``finder.embed.tflite``), which
is imported when the backbone is built.

Entries (see ``BACKBONES``):

- ``vgg16`` (default): Keras VGG16 with its top, output of layer ``fc1`` (4096-d, post-ReLU),
  ``keras.applications.vgg16.preprocess_input`` (caffe mode: RGB→BGR, ImageNet mean subtracted).
- ``resnet50``: Keras ResNet50, global average pool (2048-d), caffe preprocessing.
- ``efficientnetv2-b0``, ``mobilenetv3-large``: light Keras models, global average pool; their
  preprocessing is inside the model (it is fed float RGB 0..255).
- ``tflite``: a ``.tflite`` model file (see ``finder.embed.tflite``).
- ``keras-file``: a ``.keras``/``.h5`` model file and a layer name (see ``finder.embed.keras``).

To add a backbone kind: one entry in ``BACKBONES`` and the file of its builder (a function
``builder(*, name, weights, model, layer, mixed_precision, **options) -> Backbone``). A model
file kind also adds its file endings to ``MODEL_FILES``.

Identity: two backbones may share a library when their :func:`identity_key` is the same
(name, layer, dim, fingerprint of the weights, views). :func:`describe` is how a backbone is
named to a person; :func:`check_choice` refuses a choice other than a library's recorded one.

What every backbone does (uint8 pixels → vectors in fixed-shape batches) is
``finder.embed.base.Backbone``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from finder.embed import runtime
from finder.embed.base import Backbone
from finder.embed.runtime import AUTO, BFLOAT16, FLOAT32, PRECISIONS, PrecisionChoice
from finder.errors import (
    Arg,
    BackboneError,
    BackboneMismatch,
    Part,
    UsageError,
    WeightsUnavailable,
)
from finder.ingest.decode import check_views

DEFAULT_BACKBONE = "vgg16"
RANDOM_SEED = 0
RANDOM_FINGERPRINT = f"random-seed{RANDOM_SEED}"

# Model file endings → the registry entry that loads them.
MODEL_FILES: dict[tuple[str, ...], str] = {
    (".tflite",): "tflite",
    (".keras", ".h5", ".hdf5"): "keras-file",
}


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
    precision: str = FLOAT32  # compute precision: "float32" or "bfloat16" (finder.embed.runtime)

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
                precision=_recorded_precision(d),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BackboneError(f"bad backbone record {d!r}: {e}") from None

    def same_as(self, other: BackboneInfo | Mapping[str, Any]) -> bool:
        """True when vectors from ``self`` and ``other`` may be mixed."""
        return identity_key(self) == identity_key(other)

    def describe(self) -> str:
        return describe(self)


# ----------------------------------------------------------------------------------------------
# Identity: one key, one description, one check of a choice against a record

Record = BackboneInfo | Mapping[str, Any]


def _fields(info: Record) -> Mapping[str, Any]:
    return info.to_dict() if isinstance(info, BackboneInfo) else info


def _recorded_precision(d: Mapping[str, Any]) -> str:
    """A record's precision; records made before precisions were recorded mean float32."""
    precision = str(d.get("precision") or FLOAT32)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    return precision


def identity_key(info: Record) -> str:
    """The string that says which vectors may be mixed (stored with each learned class)."""
    d = _fields(info)
    views = int(d.get("views", 1))
    extra = f":views{views}" if views != 1 else ""
    precision = _recorded_precision(d)
    if precision != FLOAT32:
        extra += f":{precision}"
    return f"{d['name']}:{d.get('layer')}:{d['dim']}:{d['fingerprint']}{extra}"


def same_as(a: Record, b: Record) -> bool:
    """True when vectors of the backbones ``a`` and ``b`` may share a library."""
    return identity_key(a) == identity_key(b)


def describe(info: Record | None) -> str:
    """A backbone as a person reads it, e.g. ``vgg16 fc1 4096-d`` (``finder status``)."""
    if not info:
        return "none yet"
    d = _fields(info)
    parts = [d["name"]]
    if d.get("layer"):
        parts.append(d["layer"])
    parts.append(f"{d['dim']}-d")
    if int(d.get("views", 1)) != 1:
        parts.append(f"{d['views']} views")
    weights = d.get("weights")
    if weights and weights not in ("imagenet",):
        parts.append(f"weights {weights}")
    return " ".join(parts)


def model_kind(model: str | os.PathLike) -> str:
    """The registry entry that loads a model file, by its ending."""
    path = os.fsdecode(model)
    low = path.lower()
    for endings, kind in MODEL_FILES.items():
        if low.endswith(endings):
            return kind
    known = ", ".join(e for endings in MODEL_FILES for e in endings)
    raise BackboneError(f"unknown model file type: {path} (expected one of {known})")


@dataclass(frozen=True)
class BackboneChoice:
    """What a person asked for; ``None`` everywhere means "the library's, else the default"."""

    name: str | None = None
    weights: str | None = None  # "imagenet", "none" or a file
    model: str | None = None  # a .tflite / .keras / .h5 file
    layer: str | None = None
    views: int | None = None  # test-time views an image (1, 2 or 4); see finder.decode
    precision: str | None = None  # "auto", "float32" or "bfloat16"; see finder.embed.runtime

    @property
    def given(self) -> bool:
        fields = (self.name, self.weights, self.model, self.layer, self.views, self.precision)
        return any(v is not None for v in fields)


def check_precision(precision: str | None, field: str = "precision") -> str:
    """A precision a person may ask for (``None`` is ``auto``); a one-line error about the
    argument ``field`` otherwise."""
    if precision is None:
        return AUTO
    if precision not in (AUTO, *PRECISIONS):
        raise UsageError(
            Arg(field), f" must be one of {AUTO}, {', '.join(PRECISIONS)}; not {precision!r}"
        )
    return precision


def check_choice(choice: BackboneChoice, recorded: Record, library: str) -> None:
    """Refuse a backbone other than the one ``library`` recorded, without building anything."""
    if not choice.given:
        return
    d = _fields(recorded)
    want = model_kind(choice.model) if choice.model else choice.name
    mismatch = (want is not None and want != d["name"]) or (
        choice.layer is not None and choice.layer != d.get("layer")
    )
    if choice.model and not mismatch:  # a model file is recorded as the backbone's weights
        mismatch = os.path.abspath(choice.model) != d.get("weights")
    if mismatch:
        raise BackboneMismatch(
            f"the library {library} was indexed with {describe(d)}; "
            "it cannot mix in vectors of another backbone (use another ",
            Arg("library"),
            ")",
        )
    views = int(d.get("views", 1))
    if choice.views is not None and choice.views != views:
        raise BackboneMismatch(
            f"the library {library} was indexed with {_views(views)} an image; it cannot mix "
            f"in vectors of {_views(choice.views)} (leave out ",
            Arg("views"),
            ", or use another ",
            Arg("library"),
            ")",
        )
    want = check_precision(choice.precision)
    if want != AUTO and want != _recorded_precision(d):
        raise BackboneMismatch(
            f"the library {library} was indexed in {_recorded_precision(d)}; it cannot mix in "
            f"{want} vectors (leave out ",
            Arg("precision"),
            ", or use another ",
            Arg("library"),
            ")",
        )


def _views(n: int) -> str:
    return f"{n} view{'' if n == 1 else 's'}"


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


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (for a one-line error of our own)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ----------------------------------------------------------------------------------------------
# The registry


class _Builder:
    """``module:function``, imported when first called (keeps this module free of Keras)."""

    def __init__(self, module: str, function: str) -> None:
        self.module, self.function = module, function

    def __call__(self, **kwargs: Any) -> Backbone:
        return getattr(importlib.import_module(self.module), self.function)(**kwargs)

    def __repr__(self) -> str:
        return f"{self.module}:{self.function}"


KERAS_APP = _Builder("finder.embed.keras", "build_application")
KERAS_FILE = _Builder("finder.embed.keras", "build_file")
TFLITE_FILE = _Builder("finder.embed.tflite", "build_file")


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: plain data, the function that builds it and that function's options."""

    name: str
    dim: int | None  # None: depends on the model file / layer
    input_size: tuple[int, int] | None  # (width, height); None: read from the model file
    gflops: float | None  # per image, multiply-add = 2 FLOPs; None: unknown
    description: str | tuple[Part, ...]  # with Arg parts, worded by the edge that shows it
    builder: Callable[..., Backbone] = field(repr=False, compare=False)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # None: runs as its model file says (float32); False: can compute in bfloat16, but it was not
    # measured faster; True: measured faster in bfloat16, with vectors that agree with float32
    # (scripts/bench_embed.py --precision bfloat16): `auto` picks it on a CPU that has bfloat16.
    bfloat16: bool | None = None


def _app(application: str, weights_file: str, subdir: str, md5: str, **more: Any) -> dict:
    """Options of a Keras application entry (see ``finder.embed.keras.build_application``)."""
    return {"application": application, "imagenet": (weights_file, subdir, md5), **more}


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        "vgg16",
        4096,
        (224, 224),
        30.9,
        "VGG16 fc1 (4096-d), ImageNet; the default: best few-shot features, slowest",
        KERAS_APP,
        _app(
            "VGG16",
            "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
            "vgg16",
            "64373286793e3c8b2b4e3219cbf3544b",
            include_top=True,
            preprocess="vgg16",
            default_layer="fc1",
        ),
        bfloat16=True,
    ),
    "resnet50": BackboneSpec(
        "resnet50",
        2048,
        (224, 224),
        7.7,
        "ResNet50 global average pool (2048-d), ImageNet",
        KERAS_APP,
        _app(
            "ResNet50",
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "resnet",
            "4d473c1dd8becc155b73f8504c6f6626",
            preprocess="resnet50",
        ),
        bfloat16=True,
    ),
    "efficientnetv2-b0": BackboneSpec(
        "efficientnetv2-b0",
        1280,
        (224, 224),
        1.4,
        "EfficientNetV2-B0 global average pool (1280-d), ImageNet; light",
        KERAS_APP,
        _app(
            "EfficientNetV2B0",
            "efficientnetv2-b0_notop.h5",
            "efficientnet_v2",
            "893217f2bb855e2983157299931e43ff",
        ),
        bfloat16=True,
    ),
    "mobilenetv3-large": BackboneSpec(
        "mobilenetv3-large",
        960,
        (224, 224),
        0.44,
        "MobileNetV3-Large global average pool (960-d), ImageNet; lightest",
        KERAS_APP,
        _app(
            "MobileNetV3Large",
            "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
            "mobilenet_v3",
            "07fb09a5933dd0c8eaafa16978110389",
        ),
        bfloat16=False,
    ),
    "tflite": BackboneSpec(
        "tflite",
        None,
        None,
        None,
        (
            "a .tflite embedding model file (",
            Arg("model"),
            " FILE.tflite); size and quantization from the file",
        ),
        TFLITE_FILE,
    ),
    "keras-file": BackboneSpec(
        "keras-file",
        None,
        None,
        None,
        (
            "a .keras/.h5 model file (",
            Arg("model"),
            " FILE, ",
            Arg("layer"),
            " NAME, default the penultimate layer)",
        ),
        KERAS_FILE,
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
    precision: str = FLOAT32,
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
    ``precision``: ``"float32"``, ``"bfloat16"`` (Keras applications: compute in bfloat16, the
    vectors float32) or ``"auto"`` (:func:`pick_precision`); recorded in ``info``.
    """
    check_views(views)
    if model is not None:
        model = os.fsdecode(model)
        file_kind = model_kind(model)
        if name not in (None, file_kind, DEFAULT_BACKBONE):
            raise BackboneError(
                Arg("model"), f" {os.path.basename(model)} is a {file_kind}, not {name}"
            )
        name = file_kind
    name = name or DEFAULT_BACKBONE
    spec = BACKBONES.get(name)
    if spec is None:
        raise BackboneError(f"unknown backbone {name!r}; choices: {', '.join(BACKBONES)}")
    if isinstance(weights, os.PathLike):
        weights = os.fsdecode(weights)
    chosen = pick_precision(spec, precision)
    backbone = spec.builder(
        name=name,
        weights=weights,
        model=model,
        layer=layer,
        mixed_precision=mixed_precision,
        precision=chosen.precision,
        **spec.options,
    )
    backbone.precision_reason = chosen.reason if spec.bfloat16 is not None else None
    if backbone.gflops is None:
        backbone.gflops = spec.gflops
    if views != 1 or chosen.precision != FLOAT32:
        backbone.info = replace(backbone.info, views=views, precision=chosen.precision)
    return backbone


def pick_precision(spec: BackboneSpec, precision: str | None) -> PrecisionChoice:
    """The compute precision of a backbone: the one asked for, or for ``"auto"`` bfloat16 where
    the CPU has it and the backbone was measured faster in it (``spec.bfloat16``), else float32.
    Model files (``spec.bfloat16 is None``) run as saved: float32."""
    precision = check_precision(precision)
    if spec.bfloat16 is None:
        if precision == BFLOAT16:
            raise BackboneError(
                f"the {spec.name} backbone runs as its model file says; ",
                Arg("precision"),
                " bfloat16 applies to the Keras backbones of `finder backbones`",
            )
        return PrecisionChoice(FLOAT32, f"a {spec.name} model runs as saved")
    if precision == AUTO:
        return runtime.auto_precision(bfloat16_pays=spec.bfloat16)
    return PrecisionChoice(precision, "asked for")


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
    if info.name in MODEL_FILES.values():
        backbone = build(info.name, model=source, layer=info.layer, views=info.views)
    else:
        backbone = build(
            info.name,
            weights=None if source == "none" else source,
            layer=info.layer,
            mixed_precision=mixed_precision,
            views=info.views,
            precision=info.precision,
        )
    if not backbone.info.same_as(info):
        raise BackboneError(
            f"the backbone recorded as {describe(info)} (fingerprint {info.fingerprint}) now "
            f"builds as {describe(backbone.info)} (fingerprint {backbone.info.fingerprint}); "
            "its weights or model file changed"
        )
    return backbone
