"""The ``finder`` command's frame: how a command is made (:class:`Command`), the options several
commands share, and how our errors become one line on stderr and an exit code
(:func:`handle_errors`). The commands live beside it (``finder.show.commands``), each a plain
function; ``finder.show.cli`` declares the app and lists them, in the order ``finder --help``
shows them."""

from __future__ import annotations

import functools
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import typer
from typer.core import TyperCommand

from finder.errors import FinderError
from finder.show import as_json
from finder.show.progress import say
from finder.show.text import error_line

try:  # typer's own click (typer 0.2x)
    from typer._click.parser import _OptionParser
except ImportError:  # pragma: no cover - older typer on click
    from click.parser import _OptionParser  # type: ignore[no-redef]

if TYPE_CHECKING:
    from finder.library import BackboneChoice


@dataclass(frozen=True)
class OptionalValue:
    """An option that may be given without its value (click's ``is_flag=False,
    flag_value=``, which typer's click lacks): alone, or before a word ``takes`` refuses (an
    option, a folder), it means ``flag_value``."""

    flag_value: str
    takes: Callable[[str], bool]


class _Parser(_OptionParser):
    """Click's parser, knowing the command's options with an optional value."""

    def __init__(self, ctx: Any, optional: Mapping[str, OptionalValue]) -> None:
        super().__init__(ctx)
        self.optional = optional

    def _match_long_opt(self, opt: str, explicit_value: str | None, state: Any) -> None:
        option = self._long_opt.get(opt)
        optional = self.optional.get(option.dest) if option is not None else None
        if optional is not None and explicit_value is None:
            after = state.rargs[0] if state.rargs else None
            if after is None or after.startswith("-") or not optional.takes(after):
                explicit_value = optional.flag_value  # as if given as --option=flag_value
        super()._match_long_opt(opt, explicit_value, state)


class Command(TyperCommand):
    """A ``finder`` command: its arguments shown as a person writes them (``ROOT...``,
    ``[EXAMPLE]...``), without the Python type typer would show; ``optional_values`` (by
    parameter name) are options that may come without their value."""

    optional_values: ClassVar[Mapping[str, OptionalValue]] = {}

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_shown(param) if param.required else f"[{_shown(param)}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_shown(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def make_parser(self, ctx: Any) -> _Parser:
        parser = _Parser(ctx, self.optional_values)
        for param in self.get_params(ctx):
            param.add_to_parser(parser, ctx)
        return parser


def _shown(argument: Any) -> str:
    """An argument as a usage line names it: its metavar, else its name in capitals."""
    return argument.metavar or argument.name.upper()


F = TypeVar("F", bound=Callable[..., Any])


def make_app(commands: list[tuple[str, Callable[..., Any], type[Command]]]) -> typer.Typer:
    """The ``finder`` app with ``commands`` (name, function, command class), in this order, each
    with our error handling (``handle_errors``)."""
    app = typer.Typer(
        name="finder",
        help="Find photos on your disks: index once, then find classes learned from a few "
        "examples, or photos like a given one.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_finder)
    for name, func, cls in commands:
        app.command(name, cls=cls)(handle_errors(func))
    return app


def version() -> str:
    """finder's version, from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("finder")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed: no version recorded)"


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"finder {version()}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version",
        help="Print finder's version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
]


def _finder(version: VersionOpt = False) -> None:
    """The options of ``finder`` itself, before a command."""


def option(kind: Any, *flags: str, **settings: Any) -> Any:
    """An option as a command declares it: a value of ``kind`` given by ``flags``, with typer's
    ``Option`` settings (``metavar``, ``help``, ``min``, ...). A path (``Path``, a list of
    them) is read by ``path_value``: an empty one is refused."""
    return Annotated[kind, typer.Option(*flags, **_path_parser(kind), **settings)]


def argument(kind: Any, metavar: str, help: str, **settings: Any) -> Any:
    """An argument as a command declares it, shown as ``metavar`` in the usage line; a path
    is read by ``path_value``, as an option's."""
    return Annotated[
        kind, typer.Argument(metavar=metavar, help=help, **_path_parser(kind), **settings)
    ]


def path_value(text: str | os.PathLike[str]) -> Path:
    """A path given on the command line. An empty one is refused (one line, exit 2): ``Path("")``
    is ``.``, and ``--copy ''`` would copy into the current folder, ``--under ''`` mean it."""
    if isinstance(text, Path):
        return text
    if not os.fspath(text):
        raise typer.BadParameter("an empty path names nothing (write . for this folder)")
    return Path(text)


def _path_parser(kind: Any) -> dict[str, Any]:
    """``{"parser": path_value}`` when ``kind`` holds paths (``Path``, ``Path | None``,
    ``list[Path] | None``), else nothing."""
    if kind is Path:
        return {"parser": path_value}
    if typing.get_origin(kind) in (typing.Union, types.UnionType, list):
        if any(_path_parser(k) for k in typing.get_args(kind)):
            return {"parser": path_value}
    return {}


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
        except BrokenPipeError:  # the reader left (`finder find cat | head -1`): quiet
            raise typer.Exit(stdout_gone()) from None
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            say(f"error: {e.strerror or e}{where}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


READER_LEFT_EXIT = 0
"""The exit code of a command whose reader left (``finder find cat | head -1``): 0, quiet, so
that the pipeline succeeds even under ``set -o pipefail``: the reader took what it wanted."""


def stdout_gone() -> int:
    """Stdout's reader has left: what is still buffered, and anything written later, goes
    nowhere (so that Python's own flush at exit says nothing). Returns ``READER_LEFT_EXIT``."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's runner): nothing to quiet
        pass
    return READER_LEFT_EXIT


def open_library(library: Path | None, **kwargs: Any):
    from finder.library import Library

    return Library(library, **kwargs)


def echo_json(data: Any) -> None:
    """``data`` as ``--json`` prints it: every string valid UTF-8, paths exact (``as_json``)."""
    typer.echo(as_json.dumps(data, indent=2))


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
