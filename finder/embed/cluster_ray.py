"""Ray itself, for a cluster run (``finder.embed.cluster``): importing it (a one-line hint when
it is missing), the addresses ``--ray`` takes, and keeping its start-up quiet: its loggers, its
native notices, its error messages on the driver's stdout, a Ctrl-C half way through ``ray.init``.
Nothing here imports Ray at module level."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

from finder.errors import Arg, ClusterError, FinderError, Part, UsageError

INSTALL_HINT: tuple[Part, ...] = (
    Arg("ray"),
    " needs Ray, which is not installed: pip install 'finder[ray]'",
)
LOCAL = "local"

_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def require_ray() -> Any:
    """Import Ray and Ray Data, or say in one line how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ClusterError(*INSTALL_HINT) from None
    return ray


def check_address(address: str | None) -> str | None:
    """``None``/``"local"`` → None (start one here); ``"auto"``, ``host:port`` or
    ``ray://host:port`` as given; anything else is a usage error."""
    if address is None or address == LOCAL:
        return None
    if address == "auto" or _ADDRESS.match(address):
        return address
    raise UsageError(
        Arg("ray"),
        f" {address}: not a Ray address (auto, HOST:PORT or ray://HOST:PORT; ",
        Arg("ray"),
        " alone starts a local one)",
    )


def looks_like_address(text: str) -> bool:
    """True for what ``--ray`` takes as its value rather than as a folder to index."""
    return text in ("auto", LOCAL) or bool(_ADDRESS.match(text))


def finder_error(error: BaseException) -> FinderError | None:
    """Our own exception inside a Ray error (an actor that could not build the backbone)."""
    seen = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen or e is None:
            continue
        seen.add(id(e))
        if isinstance(e, FinderError):
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def quiet_ray() -> None:
    """Ray's own loggers say only errors (finder shows the progress; a failure comes back as
    an exception). FINDER_RAY_LOGS=1 keeps everything."""
    if os.environ.get("FINDER_RAY_LOGS"):
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def errors_to_stderr() -> None:
    """Ray prints the cluster's error messages (a worker that died, a task retried) on the
    driver's stdout, where `finder index --json` writes its answer: send them to stderr."""
    try:
        from ray._private import worker
    except ImportError:  # pragma: no cover - another Ray layout: nothing to redirect
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "finder_stderr", False):
        return

    def to_stderr(data: dict, *args: Any, **kwargs: Any) -> Any:
        return original({**data, "is_err": True}, *args, **kwargs)

    to_stderr.finder_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it: Ray's start-up, interrupted half way,
    leaves processes behind that its shutdown does not know of."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def native_quiet() -> Any:
    """Silence Ray's native start-up notices on stderr (file descriptor 2) for a moment."""
    if os.environ.get("FINDER_RAY_LOGS"):
        return contextlib.nullcontext()
    from finder.embed.runtime import quiet_native_stderr

    return quiet_native_stderr()
