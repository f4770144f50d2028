"""Progress of an index run on a terminal: a live bar on a tty, periodic lines in a pipe."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer


def say(message: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    typer.echo(f"finder: {message}", err=True)


class ProgressView:
    """A live bar on a terminal, plain periodic lines otherwise, nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.task = None
        self.last_line = 0.0
        self.started: float | None = None  # the first embedding result, not the model's build

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.phase == "walk":
            if not self.tty:
                say(f"scanning {event.root}")
            return
        if event.phase == "embed":
            if self.started is None:
                self.started = time.monotonic() - 1e-3
            if self.tty:
                self._bar(event)
            elif time.monotonic() - self.last_line >= 10 or event.done == event.total:
                self.last_line = time.monotonic()
                rate = event.done / max(time.monotonic() - self.started, 1e-9)
                left = (event.total - event.done) / rate if rate > 0 else 0
                say(f"embedded {event.done}/{event.total} ({rate:.1f} images/s, {left:.0f}s left)")
        if event.phase == "thumbnails":
            self.stop()
            if time.monotonic() - self.last_line >= 10 or event.done == event.total:
                self.last_line = time.monotonic()
                say(f"thumbnails {event.done}/{event.total}")
        if event.phase == "done":
            self.stop()

    def _bar(self, event: Any) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        if self.bar is None:
            self.bar = Progress(
                TextColumn("embedding"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("embed", total=event.total, rate="")
        rate = event.done / max(time.monotonic() - self.started, 1e-9)
        self.bar.update(
            self.task, completed=event.done, total=event.total, rate=f"{rate:.1f} img/s"
        )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
