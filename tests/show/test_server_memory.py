"""``finder serve`` keeps large freed blocks for the next ones (``reuse_freed_memory``): an
array of a retraining's size (tens of MB) allocated again after being freed is not faulted
in from the system again. Measured in a fresh process (the setting is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, resource, sys
import numpy as np
sys.path.insert(0, {root!r})
from finder.show.web.server import reuse_freed_memory
done = reuse_freed_memory() if sys.argv[1] == "1" else False
src = np.ones((2048, 4096), np.float32)  # 32 MiB: past glibc's own ceiling for reuse
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = src * 2  # a fresh 32 MiB array, written whole
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del a
print(json.dumps({{"done": done, "faults": faults}}))
"""


def faults(reuse: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(ROOT)), "1" if reuse else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_a_freed_large_array_is_reused_not_faulted_in_again() -> None:
    kept = faults(True)
    if not kept["done"]:
        pytest.skip("malloc is not glibc's here: nothing to set")
    plain = faults(False)
    # without it every 32 MiB array is a fresh mapping, faulted in page by page (or by huge
    # page); with it, the second and later come back from malloc's heap already mapped
    assert min(plain["faults"][1:]) > 0
    assert max(kept["faults"][1:]) * 10 < min(plain["faults"][1:])
