"""Where the backbones run: cores, TensorFlow (imported lazily, configured once), GPUs, the
compute precision (bfloat16 where the CPU multiplies in it natively), the Keras precision policy,
the several-GPU strategy and the batch-size defaults.

Importing this module changes nothing: TensorFlow is imported, and its thread pools and GPU
memory growth are set, only by the first call of :func:`tf`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------------------------
# Compute precision

AUTO = "auto"
FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
PRECISIONS = (FLOAT32, BFLOAT16)

# CPU flags (Linux /proc/cpuinfo) that mean native bfloat16 arithmetic: x86 AVX512_BF16 (AMD Zen 4
# and later, Intel Cooper Lake) and AMX (Intel Sapphire Rapids and later); ARM's BF16 extension
# ("bf16" in the Features line, HWCAP2_BF16 in the auxiliary vector).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
_AT_HWCAP2 = 26
_HWCAP2_BF16 = 1 << 14  # arm64


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags: the ``flags`` (x86) or ``Features`` (ARM) line of
    ``/proc/cpuinfo`` (or of ``cpuinfo`` when given), plus ``bf16`` when the ARM auxiliary vector
    says so. Empty where neither can be read."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.lower().split())
            break  # every core lists the same
    if _arm_hwcap_bf16():
        flags.add("bf16")
    return flags


def _arm_hwcap_bf16() -> bool:
    if platform.machine().lower() not in ("aarch64", "arm64"):
        return False
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        return bool(getauxval(_AT_HWCAP2) & _HWCAP2_BF16)
    except (OSError, AttributeError):
        return False


def bf16_flags(flags: Iterable[str] | None = None) -> list[str]:
    """The flags among ``flags`` (default: this CPU's) that mean native bfloat16 arithmetic."""
    have = cpu_flags() if flags is None else {f.lower() for f in flags}
    return [f for f in BF16_FLAGS if f in have]


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` picks, and why, in a sentence a person can read."""

    precision: str
    reason: str


def auto_precision(
    *,
    bfloat16_pays: bool = True,
    flags: Iterable[str] | None = None,
    gpu: bool | None = None,
) -> PrecisionChoice:
    """bfloat16 on a CPU with native bfloat16 arithmetic, for a backbone where it was measured
    faster and agreeing with float32 (``bfloat16_pays``); else float32. On a GPU float32 (which
    runs as mixed float16 there, as before)."""
    if gpu is None:
        gpu = bool(gpus())
    if gpu:
        return PrecisionChoice(FLOAT32, "a GPU: float32 weights, mixed float16 compute")
    have = bf16_flags(flags)
    if not have:
        return PrecisionChoice(
            FLOAT32, "this CPU has no native bfloat16 (none of " + ", ".join(BF16_FLAGS) + ")"
        )
    if not bfloat16_pays:
        return PrecisionChoice(
            FLOAT32, f"the CPU has {', '.join(have)}, but this backbone is not faster in bfloat16"
        )
    return PrecisionChoice(BFLOAT16, f"the CPU has {', '.join(have)}")


def policy_name(precision: str, *, mixed_float16: bool) -> str | None:
    """The Keras dtype policy that computes in ``precision`` (None: Keras's default, float32).
    A float32 model on a GPU computes in mixed float16 when ``mixed_float16``."""
    if precision == BFLOAT16:
        return "mixed_bfloat16"
    return "mixed_float16" if mixed_float16 else None


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
