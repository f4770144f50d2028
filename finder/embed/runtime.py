"""Where the backbones run: cores, TensorFlow (imported lazily, configured once), GPUs, the
Keras precision policy, the several-GPU strategy and the batch-size defaults.

Importing this module changes nothing: TensorFlow is imported, and its thread pools and GPU
memory growth are set, only by the first call of :func:`tf`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

CPU_BATCH_SIZE = 32
GPU_BATCH_SIZE = 128  # per GPU

_tf_lock = threading.Lock()
_tf_ready = False


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


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


def tf() -> Any:
    """Import TensorFlow, and configure threading and GPU memory growth the first time."""
    global _tf_ready
    if _tf_ready:
        import tensorflow

        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _tf_lock, quiet_native_stderr():
        import tensorflow

        if not _tf_ready:
            try:
                # Every core on each big op (a CNN is a chain of them), two ops at a time.
                tensorflow.config.threading.set_intra_op_parallelism_threads(cpu_count())
                tensorflow.config.threading.set_inter_op_parallelism_threads(2)
            except RuntimeError:
                pass  # the runtime was already initialised by someone else: keep theirs
            for gpu in tensorflow.config.list_physical_devices("GPU"):
                try:
                    tensorflow.config.experimental.set_memory_growth(gpu, True)
                except (RuntimeError, ValueError):
                    pass
            # Each backbone traces one function per fixed batch shape, once (tested); TF's
            # heuristic counts several backbones' functions as "retracing" and warns wrongly.
            tensorflow.get_logger().addFilter(_NoRetracingNotice())
            _tf_ready = True
    return tensorflow


class _NoRetracingNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def gpus() -> list:
    """The visible GPUs (physical devices); empty on a CPU-only machine."""
    return tf().config.list_physical_devices("GPU")


def default_batch_size() -> int:
    """Recommended images per compiled call on this device."""
    n = len(gpus())
    return GPU_BATCH_SIZE * n if n else CPU_BATCH_SIZE


class keras_policy:
    """Set the Keras dtype policy (e.g. ``"mixed_float16"``) while a model is built, and restore
    the previous one afterwards. ``None`` leaves the policy as it is."""

    def __init__(self, name: str | None) -> None:
        self.name = name

    def __enter__(self) -> keras_policy:
        import keras

        self.saved = keras.mixed_precision.global_policy()
        if self.name:
            keras.mixed_precision.set_global_policy(self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        import keras

        keras.mixed_precision.set_global_policy(self.saved)


def replica_devices() -> list[str]:
    """Devices to replicate a model on: every visible GPU when there are several."""
    names = [d.name for d in tf().config.list_logical_devices("GPU")]
    return names if len(names) > 1 else []


def strategy_scope() -> tuple[Any, contextlib.AbstractContextManager]:
    """(strategy or None, context manager): MirroredStrategy over several GPUs."""
    devices = replica_devices()
    if devices:
        strategy = tf().distribute.MirroredStrategy(devices)
        return strategy, strategy.scope()
    return None, contextlib.nullcontext()
