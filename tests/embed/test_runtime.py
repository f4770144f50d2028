"""finder.embed.runtime: cores, bfloat16 detection from CPU flags (mocked flag sets: the logic,
not this machine), the precision policy, and imports that change nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finder.embed import runtime
from tests.conftest import REPO

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_bf16 avx512_vnni
vmx flags\t: vnmi
bugs\t\t: sysret_ss_attrs
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm
CPU implementer\t: 0x41
"""
OLD_X86_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"


def test_cpu_count_is_this_process_cores():
    n = runtime.cpu_count()
    assert 1 <= n <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))


def test_cpu_flags_from_x86_and_arm_cpuinfo():
    x86 = runtime.cpu_flags(X86_CPUINFO)
    assert {"avx512f", "avx512_bf16", "avx2"} <= x86 and "vnmi" not in x86
    assert "bf16" in runtime.cpu_flags(ARM_CPUINFO)
    assert runtime.bf16_flags(runtime.cpu_flags(X86_CPUINFO)) == ["avx512_bf16"]
    assert runtime.bf16_flags(runtime.cpu_flags(OLD_X86_CPUINFO)) == []
    assert runtime.bf16_flags([]) == []


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # Zen 4, Cooper Lake
        ({"avx2", "amx_tile", "amx_bf16", "amx_int8"}, "bfloat16"),  # Sapphire Rapids
        ({"asimd", "bf16"}, "bfloat16"),  # ARMv8.6 BF16
        ({"avx2", "fma", "avx512f"}, "float32"),  # Zen 3, Skylake: emulated, slower
        (set(), "float32"),  # flags unreadable
    ],
)
def test_auto_picks_bfloat16_only_on_native_support(flags, expected):
    chosen = runtime.auto_precision(flags=flags, gpu=False)
    assert chosen.precision == expected
    if expected == "float32":
        assert "no native bfloat16" in chosen.reason and "avx512_bf16" in chosen.reason
    else:
        assert all(f in chosen.reason for f in runtime.bf16_flags(flags))


def test_auto_keeps_float32_where_bfloat16_does_not_pay_and_on_gpus():
    slow = runtime.auto_precision(bfloat16_pays=False, flags={"amx_bf16"}, gpu=False)
    assert slow.precision == "float32" and "not faster" in slow.reason
    gpu = runtime.auto_precision(flags={"amx_bf16"}, gpu=True)
    assert gpu.precision == "float32" and "float16" in gpu.reason


def test_keras_policy_per_precision():
    assert runtime.policy_name("bfloat16", mixed_float16=False) == "mixed_bfloat16"
    assert runtime.policy_name("bfloat16", mixed_float16=True) == "mixed_bfloat16"
    assert runtime.policy_name("float32", mixed_float16=True) == "mixed_float16"
    assert runtime.policy_name("float32", mixed_float16=False) is None


def test_importing_finder_changes_no_thread_setting():
    """Importing any of finder's modules leaves thread pools as they were (and TF unloaded)."""
    code = (
        "import faiss, sys\n"
        "faiss.omp_set_num_threads(1)\n"
        "import finder.library, finder.store.vectors, finder.embed.pipeline\n"
        "import finder.embed.registry, finder.embed.runtime, finder.embed.keras\n"
        "import finder.embed.tflite, finder.show.cli\n"
        "assert faiss.omp_get_max_threads() == 1, faiss.omp_get_max_threads()\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
