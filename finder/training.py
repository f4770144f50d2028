"""Many classes trained at once: each prepared and written in the caller's thread, in order, the
heads trained on several cores in between (a part of :mod:`finder.teach`).

A filing of hundreds or thousands of keywords (``finder learn --from-keywords``) is as many
independent heads. A head's training is numpy's and scipy's work on arrays (products that
release the GIL), so threads train several at once with nothing shared but the arrays they
read; what touches the catalog (reading a class's marks, writing its head in a transaction with
its journal record) stays in the thread that owns the connection, one class after another, in
the order given. The result is what training them one at a time gives (a head is a function of
its inputs and seed), sooner.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from finder.learn.head import Head
from finder.learn.train import train_head

T = TypeVar("T")


@dataclass
class Training:
    """A class ready to train: ``train_head``'s arguments, and ``finish``, which writes the
    head (in the caller's thread) and returns the class record."""

    inputs: dict[str, Any]
    finish: Callable[[Head], dict | None]
    train: Callable[..., Head] = train_head  # what trains it from ``inputs``


def workers_here() -> int:
    """How many heads to train at once: the cores this process may use (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def train_all(
    items: Iterable[T], prepare: Callable[[T], Training], workers: int | None = None
) -> list[dict | None]:
    """``prepare(item)`` for each item in order, the heads trained ``workers`` at a time, each
    finished in order in this thread. The items are independent (classes of their own: what
    one writes, another's ``prepare`` does not read). When one fails, those before it are
    finished and the error is raised; those after it are not started."""
    workers = workers or workers_here()
    out: list[dict | None] = []
    if workers == 1:
        for item in items:
            got = prepare(item)
            out.append(got.finish(got.train(**got.inputs)))
        return out
    from threadpoolctl import threadpool_limits

    pending: deque[tuple[Training, Future]] = deque()

    def finish_oldest() -> None:
        got, future = pending.popleft()
        out.append(got.finish(future.result()))

    # one BLAS thread per head: the heads are the parallel part
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        try:
            for item in items:
                try:
                    got = prepare(item)
                except Exception:  # those before it are written, then the error
                    while pending:
                        finish_oldest()
                    raise
                pending.append((got, pool.submit(got.train, **got.inputs)))
                while len(pending) > 2 * workers or (pending and _done(pending[0])):
                    finish_oldest()
            while pending:
                finish_oldest()
        finally:
            for _, future in pending:  # an error: what was not finished is dropped
                future.cancel()
    return out


def _done(entry: tuple[Training, Future]) -> bool:
    return entry[1].done()
