"""``tflite``: a ``.tflite`` model file run by LiteRT (``ai-edge-litert``, a dependency: it does
not import TensorFlow), else by TensorFlow's deprecated TFLite interpreter (the same vectors).

Input size and quantization are read from the interpreter. A uint8-input model is fed raw RGB
0..255 (its input quantization does its own scaling); a float-input model is fed float32 RGB
0..255 unchanged (no normalisation: a model that expects another range must carry its own
rescaling). A uint8 output is dequantized with ``(q - zero_point) * scale``; the output is
flattened per image. The model runs on every core; its batch is resized to the fixed shapes of
:class:`~finder.embed.registry.Backbone` when the model allows, else one image at a time.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from finder.embed import runtime
from finder.embed.base import Backbone
from finder.embed.identity import BackboneInfo, file_fingerprint, one_line
from finder.errors import Arg, BackboneError


class TFLiteBackbone(Backbone):
    """A .tflite model file run by the TFLite interpreter (ai-edge-litert when installed)."""

    def __init__(self, path: str) -> None:
        Interpreter = _interpreter_class()
        try:
            with warnings.catch_warnings(), runtime.quiet_native_stderr():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                self._interp = Interpreter(model_path=path, num_threads=runtime.cpu_count())
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackboneError(f"cannot load TFLite model {path}: {one_line(e)}") from None
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
        self.batch_size = runtime.CPU_BATCH_SIZE
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
        with runtime.quiet_native_stderr():
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
        Interpreter = runtime.tf().lite.Interpreter
    return Interpreter


def build_file(*, model: str | None, layer: str | None, **_: Any) -> Backbone:
    """``tflite``: a ``.tflite`` model file."""
    if not model:
        raise BackboneError(
            "the tflite backbone needs a model file: ", Arg("model"), " FILE.tflite"
        )
    if layer:
        raise BackboneError(
            "a TFLite model has one output; ", Arg("layer"), " does not apply to it"
        )
    path = os.path.abspath(os.fsdecode(model))
    if not os.path.isfile(path):
        raise BackboneError(f"model file not found: {path}")
    return TFLiteBackbone(path)
