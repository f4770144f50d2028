"""The ``finder`` command: a thin typer layer over :class:`finder.library.Library`.

Each command parses its arguments, calls the library, and renders the answer (plain text in
``finder.show.text``, JSON with ``--json``). Our own errors become one line on stderr and a
non-zero exit code; nothing here knows how indexing or search work. How a command is made and
the shared options are in ``finder.show.app``, the commands in ``finder.show.commands``; the
app below lists them, in the order ``finder --help`` shows them.
"""

from __future__ import annotations

import os
import sys

import typer

from finder.show.app import Command, make_app, say, stdout_gone
from finder.show.commands import classes, dupes, evaluate, filing, index, serve

app = make_app(
    [
        ("index", index.index, index.IndexCommand),
        ("status", index.status, Command),
        ("check", index.check, Command),
        ("repair", index.repair, Command),
        ("backbones", index.backbones, Command),
        ("learn", classes.learn, Command),
        ("classes", classes.classes, Command),
        ("rename", classes.rename, Command),
        ("forget", classes.forget, Command),
        ("restore", classes.restore, Command),
        ("find", classes.find, Command),
        ("similar", classes.similar, Command),
        ("tag", classes.tag, Command),
        ("suggest", filing.suggest, Command),
        ("dupes", dupes.dupes, Command),
        ("serve", serve.serve, Command),
        ("eval", evaluate.evaluate, Command),
    ]
)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    # TensorFlow's C++ start-up chatter is noise to a person using the command.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:  # recent typer vendors click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover - older typer on click
        from click import exceptions as cx

    args = sys.argv[1:] or ["--help"]  # no command: the help, not an error
    try:
        code = app(args=args, standalone_mode=False)
    except cx.ClickException as e:  # bad flags and arguments: one line, not a usage page
        ctx = getattr(e, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        say(f"error: {e.format_message()}{hint}")
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        say("interrupted")
        code = 130
    try:
        sys.stdout.flush()  # here, not at exit, where a reader that left is a Python warning
    except BrokenPipeError:
        code = stdout_gone()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
