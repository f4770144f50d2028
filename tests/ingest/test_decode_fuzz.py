"""Decode fuzzing: mutated JPEG, PNG, GIF, WebP, TIFF and HEIC files (bit flips, truncations,
header edits) are each either decoded or failed with a reason: no other exception, no crash, no
hang, bounded memory.

The mutations run in a child process (a crash of a native decoder would otherwise take pytest
down with it), which reports one JSON line a file and its peak resident memory. CI runs
``FUZZ_COUNT`` mutations (a few hundred a format, well under 30 s); set ``FINDER_FUZZ_COUNT``
for more, e.g. ``FINDER_FUZZ_COUNT=20000 pytest tests/ingest/test_decode_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

FUZZ_COUNT = int(os.environ.get("FINDER_FUZZ_COUNT", "1800"))
#: Peak resident memory allowed to the child, whatever the mutated headers declare.
MAX_RSS_MB = 600
#: Seconds allowed to one decode (a hang is a failure).
PER_FILE_SECONDS = 10

CHILD = textwrap.dedent(
    """
    import io, json, random, resource, sys, time, traceback
    import numpy as np
    from PIL import Image
    from finder.errors import DecodeError
    from finder.ingest.decode import load_rgb

    count, seed, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a safety net for the machine
    import pillow_heif
    pillow_heif.register_heif_opener()

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    base[::7] = 30  # some structure, so compressors have something to do
    im = Image.fromarray(base)

    def saved(fmt, **kw):
        b = io.BytesIO()
        (im.convert(kw.pop("mode")) if "mode" in kw else im).save(b, format=fmt, **kw)
        return b.getvalue()

    seeds = {
        "jpeg": saved("JPEG", quality=90),
        "jpeg-progressive": saved("JPEG", quality=90, progressive=True),
        "png": saved("PNG"),
        "png-rgba-interlaced": saved("PNG", mode="RGBA", interlace=1),
        "gif": saved("GIF"),
        "webp": saved("WEBP", quality=80),
        "webp-lossless": saved("WEBP", lossless=True),
        "tiff": saved("TIFF", compression="tiff_deflate"),
        "heic": saved("HEIF", quality=60),
    }

    def mutate(data, r):
        kind = r.choice(("flip", "truncate", "header", "size"))
        b = bytearray(data)
        if kind == "flip":
            for _ in range(r.randint(1, 8)):
                i = r.randrange(len(b))
                b[i] ^= 1 << r.randrange(8)
        elif kind == "truncate":
            b = b[: r.randrange(1, len(b))]
            if r.random() < 0.5:  # with an end marker appended, as a careless tool would
                b += r.choice((b"\\xff\\xd9", b"\\x00\\x00\\x00\\x00IEND\\xaeB`\\x82", b";"))
        elif kind == "header":
            for _ in range(r.randint(1, 4)):
                i = r.randrange(min(64, len(b)))
                b[i] = r.randrange(256)
        else:  # a 16- or 32-bit number in the header set large: a declared size
            i = r.randrange(min(48, len(b) - 4))
            width = r.choice((2, 4))
            b[i : i + width] = r.choice((15000, 40000, 65535, 1 << 20)).to_bytes(4, "big")[-width:]
        return kind, bytes(b)

    r = random.Random(seed)
    names = sorted(seeds)
    path = f"{folder}/fuzz.img"
    for k in range(count):
        fmt = names[k % len(names)]
        kind, data = mutate(seeds[fmt], r)
        with open(path, "wb") as f:
            f.write(data)
        print(json.dumps({"k": k, "fmt": fmt, "kind": kind, "start": True}), flush=True)
        started = time.monotonic()
        try:
            a = load_rgb(path, (32, 24))
            ok = a.shape == (24, 32, 3) and a.dtype == np.uint8
            out = {"result": "decoded" if ok else f"bad array {a.shape} {a.dtype}"}
        except DecodeError as e:
            out = {"result": "failed", "reason": str(e)}
        except BaseException as e:
            out = {"result": "error", "reason": "".join(traceback.format_exception(e))[-600:]}
        out.update(k=k, fmt=fmt, kind=kind, seconds=round(time.monotonic() - started, 3))
        print(json.dumps(out), flush=True)
    # VmHWM: this process's own peak (ru_maxrss would keep pytest's, carried across exec)
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) // 1024
    print(json.dumps({"peak_mb": peak}), flush=True)
    """
)


def test_mutated_photos_decode_or_fail_with_a_reason(tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    timeout = 60 + FUZZ_COUNT * 0.2
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(FUZZ_COUNT), "15", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
        )
        stdout, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as e:
        stdout, code = (e.stdout or b"").decode(), "timeout"
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    results = [x for x in lines if "result" in x]
    last = lines[-1] if lines else {}
    if code != 0:
        hint = f"the last file started: {last}" if last.get("start") else ""
        raise AssertionError(f"the decoding child ended with {code} (a crash or hang); {hint}")
    assert len(results) == FUZZ_COUNT
    errors = [x for x in results if x["result"] not in ("decoded", "failed")]
    assert not errors, errors[:3]
    assert all(x["reason"].strip() for x in results if x["result"] == "failed")
    slow = [x for x in results if x["seconds"] > PER_FILE_SECONDS]
    assert not slow, slow[:3]
    assert last["peak_mb"] < MAX_RSS_MB, last
    # the mutations reach both outcomes for every format (else they test nothing)
    for fmt in {x["fmt"] for x in results}:
        outcomes = {x["result"] for x in results if x["fmt"] == fmt}
        assert outcomes == {"decoded", "failed"}, (fmt, outcomes)
