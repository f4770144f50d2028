"""Run the page: bind, print the URL with its token (Jupyter style), serve until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from finder.errors import UsageError
from finder.show.web.guard import WILDCARD, allowed_host, is_loopback


def url_for(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in WILDCARD else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one. One-line errors."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # address in use (Linux, macOS, Windows)
            raise UsageError(f"port {port} is in use; pick another with --port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    return sock


def one_blas_thread() -> None:
    """Linear algebra on one thread in this process. Training a head is many small products
    (a 1000 x D background); with a BLAS thread per core they fight every other busy thread:
    on a loaded 2-core machine a click took 30 s to retrain instead of 1 s. Search is
    unaffected (FAISS has its own threads)."""
    import numpy  # noqa: F401 - the BLAS libraries must be loaded to be limited
    import scipy.optimize  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def serve(
    library: str | os.PathLike | Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    token: str | None = None,
    allow_hosts: Sequence[str] = (),
) -> None:
    """Serve ``library`` until interrupted. The first line on stdout is the URL to open.
    ``allow_hosts``: names the ``Host`` header may give besides this machine's own."""
    import uvicorn

    from finder.show.web.app import create_app

    for name in allow_hosts:
        allowed_host(name)  # a bad name: one line, before anything starts
    if not is_loopback(host):
        print(
            f"finder: warning: listening on {host}, not loopback: anyone who can reach this "
            "machine and learns the token can see your photos (by this machine's names and "
            "addresses, and those given with --allow-host)",
            file=sys.stderr,
        )
    one_blas_thread()
    sock = bind(host, port)
    port = sock.getsockname()[1]
    token = token or secrets.token_urlsafe(24)
    app = create_app(library, token=token, port=port, host=host, allow_hosts=allow_hosts)
    url = url_for(host, port, token)
    print(url, flush=True)
    print("finder: serving; Ctrl-C stops", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    if open_browser and _has_display():
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then raises the Ctrl-C it caught again
        pass
    finally:
        sock.close()
        print("finder: stopped", file=sys.stderr)


def _has_display() -> bool:
    """A graphical browser can open here (else webbrowser might start a text one in the
    terminal the server prints to)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
