"""The ``finder`` command's frame: the typer app, how commands show their help, the options
several commands share, and how our errors become one line on stderr and an exit code.
Commands live beside it (``finder.show.commands``); ``finder.show.cli`` is the entry point."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

from finder.errors import FinderError
from finder.show.progress import say
from finder.show.text import error_line

if TYPE_CHECKING:
    from finder.library import BackboneChoice


class _Argument(TyperArgument):
    """An argument as a person writes it in a usage line (``ROOT...``, ``[EXAMPLE]...``),
    without the Python type typer would show."""

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        return name if self.required else f"[{name}]"

    def _rich_display_name(self) -> str:
        return self.metavar or self.name.upper()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _Argument

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _bare_ray(args))


def _bare_ray(args: list[str]) -> list[str]:
    """``--ray`` takes an optional ADDRESS: alone (last, or before an option or a folder) it
    means a local cluster."""
    if "--ray" not in args:
        return args
    from finder.embed.cluster_ray import LOCAL, looks_like_address

    out: list[str] = []
    for k, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            return out + args[k + 1 :]
        if arg == "--ray":
            nxt = args[k + 1] if k + 1 < len(args) else None
            if nxt is None or nxt.startswith("-") or not looks_like_address(nxt):
                out.append(LOCAL)
    return out


app = typer.Typer(
    name="finder",
    help="Find photos on your disks: index once, then find classes learned from a few "
    "examples, or photos like a given one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def option(kind: Any, *flags: str, **settings: Any) -> Any:
    """An option as a command declares it: a value of ``kind`` given by ``flags``, with typer's
    ``Option`` settings (``metavar``, ``help``, ``min``, ...)."""
    return Annotated[kind, typer.Option(*flags, **settings)]


def argument(kind: Any, metavar: str, help: str, **settings: Any) -> Any:
    """An argument as a command declares it, shown as ``metavar`` in the usage line."""
    return Annotated[kind, typer.Argument(metavar=metavar, help=help, **settings)]


LibraryOpt = option(
    Path | None,
    "--library",
    "-L",
    envvar="FINDER_LIBRARY",
    metavar="PATH",
    help="Library folder (default: $FINDER_LIBRARY, else ~/.local/share/finder).",
    show_default=False,
)
JsonOpt = option(bool, "--json", help="Print JSON instead of text.")
NameArg = argument(str, "NAME", "A learned class.")


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``app.command`` with finder's help layout (arguments shown as ``ROOT...``) and its
    error handling (``handle_errors``)."""
    register = app.command(*args, cls=_Command, **kwargs)
    return lambda func: register(handle_errors(func))


def handle_errors(func: F) -> F:
    """Turn our exceptions (and Ctrl-C) into one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FinderError as e:
            say(f"error: {error_line(e)}")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            say("interrupted")
            raise typer.Exit(130) from None
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            say(f"error: {e.strerror or e}{where}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def open_library(library: Path | None, **kwargs: Any):
    from finder.library import Library

    return Library(library, **kwargs)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def echo_lines(lines: list[str] | list[bytes]) -> None:
    for line in lines:
        typer.echo(line)


def print_messages(lib: Any) -> None:
    for m in lib.messages:
        say(m)


BackboneOpt = option(
    str | None,
    "--backbone",
    metavar="NAME",
    help="Backbone for a new library (see `finder backbones`).",
)
ModelOpt = option(
    Path | None,
    "--model",
    metavar="PATH",
    help="A local model file: .tflite, or .keras/.h5 with --layer.",
)
WeightsOpt = option(
    str | None,
    "--weights",
    metavar="FILE",
    help="Local weights FILE for the backbone instead of the ImageNet download "
    "('none': random weights, for testing).",
)
QuietOpt = option(bool, "--quiet", "-q", help="No progress display.")
ViewsOpt = option(
    int | None,
    "--views",
    metavar="N",
    help="Views of each image averaged into its vector, for a new library: 1 (default), 2 "
    "(and its mirror) or 4 (and a centre crop and its mirror): better classes, 2-4x the "
    "embedding time.",
)


LayerOpt = option(
    str | None, "--layer", metavar="NAME", help="Layer of a .keras/.h5 model to embed with."
)
PrecisionOpt = option(
    str | None,
    "--precision",
    metavar="auto|float32|bfloat16",
    help="Compute precision for a new library: auto (default: bfloat16 where the CPU "
    "does it natively and the backbone is faster in it, else float32), float32 or "
    "bfloat16. Kept by the library.",
)

BACKBONE_OPTIONS = ("backbone", "model", "layer", "weights", "views", "precision")
"""The options that choose a library's backbone (``BackboneOpt`` ... ``PrecisionOpt``): every
command that may make a new library (``index``, ``eval``) declares all of them and passes them
to ``backbone_choice`` in this order."""


def backbone_choice(
    backbone: str | None,
    model: Path | None,
    layer: str | None,
    weights: str | None,
    views: int | None,
    precision: str | None,
) -> BackboneChoice:
    """The ``BackboneChoice`` of the backbone options (``BACKBONE_OPTIONS``)."""
    from finder.library import BackboneChoice

    model_path = str(model) if model is not None else None
    return BackboneChoice(
        name=backbone,
        weights=weights,
        model=model_path,
        layer=layer,
        views=views,
        precision=precision,
    )
