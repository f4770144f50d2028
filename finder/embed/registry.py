"""A small registry of image embedding backbones: which exist, and building one.

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
file kind also adds its file endings to ``finder.embed.identity.MODEL_FILES``.

Identity (which backbones may share a library, how one is named to a person, the check of a
choice against a library's record) is ``finder.embed.identity``.

What every backbone does (uint8 pixels → vectors in fixed-shape batches) is
``finder.embed.base.Backbone``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from finder.embed import runtime
from finder.embed.base import Backbone
from finder.embed.identity import MODEL_FILES, BackboneInfo, check_precision, describe, model_kind
from finder.embed.runtime import AUTO, BFLOAT16, FLOAT32, PrecisionChoice
from finder.errors import Arg, BackboneError, Part
from finder.ingest.decode import check_views

DEFAULT_BACKBONE = "vgg16"
RANDOM_SEED = 0
RANDOM_FINGERPRINT = f"random-seed{RANDOM_SEED}"


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
