"""What ``scripts/chaos_index.py`` and ``scripts/chaos_teach.py`` share: their data flags, running
``python -m finder`` as a person would, a run killed at a given moment, and counting the runs
that did not answer in one line.

    env = finder_env()
    run = finder(["status", "--library", str(library)], env)
    killed, finished = killed_after(argv, env, delay=2.5)
    bad = tracebacks(run, killed)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def data_flags(ap: argparse.ArgumentParser) -> None:
    """``--photos`` (the shared photos) and ``--model`` (the shared TFLite model)."""
    ap.add_argument("--photos", type=Path, default=SHARED / "photos")
    ap.add_argument("--model", type=Path, default=MODEL)


def finder_env() -> dict[str, str]:
    """The environment of the finder processes: this checkout's code, TensorFlow quiet."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}


def finder(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """``python -m finder ARGS``, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "finder", *args], env=env, capture_output=True, timeout=3600
    )


def killed_after(
    argv: list[str], env: dict, delay: float
) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``argv`` and SIGKILL it after ``delay`` seconds: the run (its stderr) and whether
    it finished first."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=delay)
        finished = True
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = False
    assert proc.stderr is not None
    return subprocess.CompletedProcess(argv, proc.returncode, b"", proc.stderr.read()), finished


def tracebacks(*runs: subprocess.CompletedProcess) -> int:
    """Runs that ended in a traceback, or said more than one line on an error (a hint line,
    ``finder: next: ...``, aside; a killed or interrupted run may say anything)."""
    bad = 0
    for run in runs:
        err = run.stderr.decode(errors="replace")
        lines = [ln for ln in err.splitlines() if not ln.startswith("finder: next:")]
        several = run.returncode > 0 and run.returncode != 130 and len(lines) > 1
        if "Traceback" in err or several:
            print(f"    not one line (exit {run.returncode}): {err[-600:]}")
            bad += 1
    return bad
