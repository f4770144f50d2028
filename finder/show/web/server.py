"""Run the page: bind, print the URL with its token (Jupyter style), serve until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from finder.errors import FinderError, UsageError
from finder.show.text import batch_line, error_line
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


KEEP_FREED: int = 1 << 30
"""Blocks below this size (1 GiB) come from malloc's heap and go back to it when freed, and
the heap is given back to the system only past this much free at its top
(:func:`reuse_freed_memory`)."""


def reuse_freed_memory() -> bool:
    """Large blocks freed in this process kept for the next ones (glibc's ``mallopt``), not
    given back to the system and faulted in again. A retraining at 4,096-d makes a dozen arrays
    of 2,000-4,000 rows (33-66 MB each: the background in the metric, its graph's rows, the
    fresh photos); above glibc's 32 MB ceiling each came from a fresh ``mmap`` whose pages the
    kernel zeroes and maps on first touch: concatenating two of them cost 65-123 ms of CPU,
    15-40 with the memory reused (docs/heads.md, speed). A server's peak stays mapped; nothing
    else changes. False where malloc is not glibc's (nothing done)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_FREED)) and bool(
        mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    )


class Follower:
    """``finder serve --watch``: the library's roots followed in a thread of its own, with a
    Library of its own (made, used and closed in that thread: SQLite's connections belong to
    theirs) that holds the writer's lock, taken by ``start`` before anything is served
    (``LibraryLocked``, naming the holder, when another process writes). The page's library
    stays shared and sees what it stores through ``refresh``. ``stop`` ends the watch as
    Ctrl-C ends ``index --watch``."""

    def __init__(self, library: str | os.PathLike | Path | None) -> None:
        self.library = library
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None  # what kept the watch from starting
        self._thread = threading.Thread(target=self._run, name="finder-watch", daemon=True)

    def start(self) -> None:
        """Take the lock and start following; raises what kept it from starting."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        from finder.library import Library

        lib = None
        try:
            lib = Library(self.library)
            roots = lib.roots()
            if not roots:
                raise UsageError(
                    f"the library {lib.dir} has no folder to follow yet: index one "
                    "first (`finder index FOLDER`), then `finder serve --watch` follows it"
                )
            lib.lock()
        except BaseException as e:
            self._error = e
            if lib is not None:
                lib.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            lib.watch(
                roots,
                stop=self._stop,
                say=say,
                on_batch=_said_batch,
                on_index=lambda _s: say(f"watching {', '.join(roots)}"),
            )
        except FinderError as e:
            say(f"the watch stopped: {error_line(e)}; the page is still served")
        except Exception as e:  # never a traceback: the page goes on without the watch
            say(f"the watch stopped: {type(e).__name__}: {e}; the page is still served")
        finally:
            lib.close()

    def stop(self) -> None:
        """End the watch (what it was doing is kept, the library settled) and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def say(message: str) -> None:
    print(f"finder: {message}", file=sys.stderr, flush=True)


def _said_batch(batch: object) -> None:
    say(batch_line(batch))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve(
    library: str | os.PathLike | Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    token: str | None = None,
    allow_hosts: Sequence[str] = (),
    watch: bool = False,
) -> None:
    """Serve ``library`` until interrupted. The first line on stdout is the URL to open.
    ``allow_hosts``: names the ``Host`` header may give besides this machine's own. With
    ``watch``, also follow the folders it indexed (this process is then its one writer)."""
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
    reuse_freed_memory()
    follower = Follower(library) if watch else None
    if follower is not None:
        follower.start()  # the lock first: a second writer says so
    try:
        sock = bind(host, port)
    except BaseException:
        if follower is not None:
            follower.stop()
        raise
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
    previous = signal.signal(signal.SIGTERM, _interrupt) if follower else None
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then raises the Ctrl-C it caught again
        pass
    finally:
        sock.close()
        if follower is not None:
            say("stopping the watch")
            follower.stop()
            signal.signal(signal.SIGTERM, previous)
        print("finder: stopped", file=sys.stderr)


def _has_display() -> bool:
    """A graphical browser can open here (else webbrowser might start a text one in the
    terminal the server prints to)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
