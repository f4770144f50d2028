"""The progress of an index run, published for other processes (``finder serve``'s home page).

``LIBRARY/progress.json`` holds the last event of the run in progress (or of the last run):
``{"pid", "phase", "done", "total", "root", "started", "updated"}``, ``phase`` one of "walk",
"embed", "thumbnails", "done". It is rewritten atomically at most every ``EVERY`` seconds and at
every change of phase. A reader calls the run alive while its process is (``running``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

FILE = "progress.json"
EVERY = 0.5  # seconds between two writes within one phase


class ProgressFile:
    """The writer side: ``publish(phase, done, total, root)`` from inside the run."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = Path(directory) / FILE
        self.started = time.time()
        self._last = 0.0
        self._phase: str | None = None

    def publish(self, phase: str, done: int = 0, total: int = 0, root: str = "") -> None:
        now = time.monotonic()
        if phase == self._phase and now - self._last < EVERY and done != total:
            return
        self._phase, self._last = phase, now
        data = {
            "pid": os.getpid(),
            "phase": phase,
            "done": int(done),
            "total": int(total),
            "root": os.fsencode(root).decode("utf-8", "backslashreplace"),
            "started": self.started,
            "updated": time.time(),
        }
        tmp = self.path.with_name(f".{FILE}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
        except OSError:  # progress is a courtesy: never let it stop a run
            tmp.unlink(missing_ok=True)


def read(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The last published event with ``running`` (its process alive and not done), or None."""
    try:
        data = json.loads((Path(directory) / FILE).read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    data["running"] = data.get("phase") != "done" and alive(pid)
    return data


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
