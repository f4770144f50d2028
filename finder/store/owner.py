"""Who writes a library: the owner record the holder of the writer's lock keeps beside it.

``LIBRARY/owner.json``: ``{"pid", "argv", "command", "started", "following", "offline"}``,
written when the lock is taken (``following`` null), rewritten by a watch with the roots it
follows and those of them offline now (a page's live updates notice the file change), and
removed when the lock is let go. A process that cannot have the lock reads it to say who has
it (``LibraryLocked.owner``). A record left by a killed process is stale: its pid is gone,
and ``read`` ignores it (the lock itself went with the process).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finder.store.progress import alive

FILE = "owner.json"


def command_line(argv: Sequence[str]) -> str:
    """The command a process runs, as a person would type it (``python -m finder ...`` is
    ``finder ...``)."""
    if not argv:
        return "python"
    prog = os.path.basename(argv[0])
    if prog == "__main__.py":
        prog = os.path.basename(os.path.dirname(argv[0])) or "python"
    return shlex.join([prog, *argv[1:]])


def write(
    directory: str | os.PathLike,
    following: Sequence[str] | None = None,
    offline: Sequence[str] = (),
) -> None:
    """Record this process as the library's writer (``following``: the roots it watches,
    ``offline``: the parts of them offline now)."""
    path = Path(directory) / FILE
    data: dict[str, Any] = {
        "pid": os.getpid(),
        "argv": list(sys.argv),
        "command": command_line(sys.argv),
        "started": time.time(),
        "following": list(following) if following is not None else None,
        "offline": list(offline),
    }
    tmp = path.with_name(f".{FILE}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:  # a courtesy for the next writer's message: never let it stop a run
        tmp.unlink(missing_ok=True)


def remove(directory: str | os.PathLike) -> None:
    """Forget this process's record (it lets the lock go)."""
    path = Path(directory) / FILE
    try:
        data = json.loads(path.read_text())
        if int(data.get("pid", -1)) == os.getpid():
            path.unlink()
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def read(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The record of the process that holds the lock, or None (none kept, or stale)."""
    try:
        data = json.loads((Path(directory) / FILE).read_text())
        pid = int(data["pid"])
        command = str(data["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or not alive(pid):
        return None
    following = data.get("following")
    if following is not None and not (
        isinstance(following, list) and all(isinstance(p, str) for p in following)
    ):
        following = None
    argv = data.get("argv")
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        argv = []
    return {"pid": pid, "command": command, "argv": argv, "following": following}
