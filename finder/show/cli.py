"""The ``finder`` command: a thin typer layer over :class:`finder.library.Library`.

Each command parses its arguments, calls the library, and renders the answer (rich tables on
a terminal, plain lines in a pipe, JSON with ``--json``). Our own errors become one line on
stderr and a non-zero exit code; nothing here knows how indexing or search work.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from finder.errors import FinderError

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

LibraryOpt = Annotated[
    Path | None,
    typer.Option(
        "--library",
        "-L",
        envvar="FINDER_LIBRARY",
        help="Library folder (default: $FINDER_LIBRARY, else ~/.local/share/finder).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _err(message: str) -> None:
    typer.echo(f"finder: {message}", err=True)


def handle_errors(func: F) -> F:
    """Turn our exceptions (and Ctrl-C) into one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FinderError as e:
            _err(f"error: {e}")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            _err(f"error: {e.strerror or e}{where}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _library(library: Path | None, **kwargs: Any):
    from finder.library import Library

    return Library(library, **kwargs)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _echo_path_line(prefix: str, path: str) -> None:
    """Print a path exactly as the file system has it, undecodable bytes included."""
    typer.echo(prefix.encode() + os.fsencode(path))


def _messages(lib: Any) -> None:
    for m in lib.messages:
        _err(m)


# ------------------------------------------------------------------------------- index
class _ProgressView:
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
                _err(f"scanning {event.root}")
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
                _err(f"embedded {event.done}/{event.total} ({rate:.1f} images/s, {left:.0f}s left)")
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


ViewsOpt = Annotated[
    int | None,
    typer.Option(
        "--views",
        help="Views of each image averaged into its vector, for a new library: 1 (default), 2 "
        "(and its mirror) or 4 (and a centre crop and its mirror): better classes, 2-4x the "
        "embedding time.",
    ),
]


@app.command()
@handle_errors
def index(
    roots: Annotated[list[Path], typer.Argument(help="Folders (or files) to index.")],
    library: LibraryOpt = None,
    backbone: Annotated[
        str | None,
        typer.Option("--backbone", help="Backbone for a new library (see `finder backbones`)."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="A local model file: .tflite, or .keras/.h5 with --layer."),
    ] = None,
    layer: Annotated[
        str | None, typer.Option("--layer", help="Layer of a .keras/.h5 model to embed with.")
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            help="Local weights FILE for the backbone instead of the ImageNet download "
            "('none': random weights, for testing).",
        ),
    ] = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also index hidden files.")] = False,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Skip paths matching GLOB (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per model call.", min=1)
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Decoding threads.", min=1)
    ] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option("--memory-budget", help="Memory for the search index, e.g. 2GB (remembered)."),
    ] = None,
    views: ViewsOpt = None,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="Compute precision for a new library: auto (default: bfloat16 where the CPU "
            "does it natively and the backbone is faster in it, else float32), float32 or "
            "bfloat16. Kept by the library.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Index photos under ROOTS: new files are embedded, changed ones re-embedded, deleted
    ones dropped, moved ones keep their vectors."""
    from finder.library import BackboneChoice

    choice = BackboneChoice(
        name=backbone,
        weights=weights,
        model=str(model) if model is not None else None,
        layer=layer,
        views=views,
        precision=precision,
    )
    view = _ProgressView(quiet or as_json)
    with _library(
        library,
        backbone=choice,
        batch_size=batch_size,
        workers=workers,
        memory_budget=_parse_bytes(memory_budget) if memory_budget else None,
    ) as lib:
        try:
            summary = lib.index(
                [str(r) for r in roots], hidden=hidden, exclude=exclude or [], progress=view
            )
        finally:
            view.stop()
    for m in summary.messages:
        _err(m)
    if as_json:
        _echo_json(summary.to_dict())
    else:
        rate = summary.embedded / summary.seconds if summary.seconds > 0 else 0.0
        typer.echo(
            f"{'interrupted: ' if summary.interrupted else ''}"
            f"{summary.new} new, {summary.changed} changed, {summary.moved} moved, "
            f"{summary.deleted} deleted, {summary.unchanged} unchanged, {summary.failed} failed "
            f"({summary.embedded} embedded in {summary.seconds:.1f}s, {rate:.1f} images/s)"
        )
    if summary.interrupted:
        raise typer.Exit(130)


def _parse_bytes(text: str) -> int:
    from finder.errors import UsageError

    units = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30}
    units |= {"GB": 2**30, "T": 2**40, "TB": 2**40}
    t = text.strip().upper().replace("IB", "B")
    num = t.rstrip("KMGTB")
    try:
        return int(float(num) * units[t[len(num) :]])
    except (ValueError, KeyError):
        raise UsageError(f"--memory-budget: cannot read {text!r} (try 2GB or 500MB)") from None


# ------------------------------------------------------------------------------- learn
@app.command()
@handle_errors
def learn(
    name: Annotated[str, typer.Argument(help="Class name, e.g. cat.")],
    examples: Annotated[
        list[Path] | None,
        typer.Argument(help="Example photos of the class, or folders of them.", show_default=False),
    ] = None,
    add: Annotated[
        list[Path] | None,
        typer.Option("--add", help="More example photos (repeatable), e.g. from `find` output."),
    ] = None,
    negatives: Annotated[
        list[Path] | None,
        typer.Option("--not", help="Photos that are NOT of the class (repeatable)."),
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn class NAME from example photos; learning it again refines it."""
    positives = [str(p) for p in (examples or [])] + [str(p) for p in (add or [])]
    with _library(library) as lib:
        record = lib.learn(name, positives, negatives=[str(p) for p in (negatives or [])])
        _messages(lib)
    if as_json:
        _echo_json(_class_json(record))
    else:
        typer.echo(
            f"learned {record['name']!r} from {record['n_pos']} examples and "
            f"{record['n_neg']} counter-examples (cut-off {record['threshold']:.2f})"
        )


def _class_json(record: dict) -> dict:
    return {
        "name": record["name"],
        "examples": record["n_pos"],
        "negatives": record["n_neg"],
        "threshold": record["threshold"],
        "updated": record["updated"],
    }


@app.command()
@handle_errors
def classes(
    library: LibraryOpt = None,
    examples: Annotated[
        str | None, typer.Option("--examples", help="List the examples of class NAME.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the learned classes (or one class's examples)."""
    with _library(library) as lib:
        if examples is not None:
            rows = lib.examples(examples)
            if as_json:
                _echo_json(
                    [{"path": p, "label": "positive" if lab else "negative"} for p, lab in rows]
                )
            else:
                for path, label in rows:
                    _echo_path_line("+ " if label else "- ", path)
            return
        records = lib.classes()
    if as_json:
        _echo_json([_class_json(r) for r in records])
        return
    if not records:
        typer.echo("no classes yet: teach one with `finder learn NAME EXAMPLE...`")
        return
    for r in records:
        typer.echo(
            f"{r['name']}\t{r['n_pos']} examples\t{r['n_neg']} counter-examples\t"
            f"cut-off {r['threshold']:.2f}"
        )


@app.command()
@handle_errors
def forget(
    name: Annotated[str, typer.Argument(help="Class to remove.")],
    library: LibraryOpt = None,
) -> None:
    """Remove a learned class and its examples."""
    with _library(library) as lib:
        lib.forget(name)
    typer.echo(f"forgot {name!r}")


# ------------------------------------------------------------------------------- search
def _print_matches(matches: list, key: str, as_json: bool) -> None:
    if as_json:
        _echo_json([{"path": m.path, key: m.score} for m in matches])
        return
    for m in matches:
        _echo_path_line(f"{m.score:.3f}  ", m.path)


@app.command()
@handle_errors
def find(
    name: Annotated[str, typer.Argument(help="A learned class.")],
    top: Annotated[
        int | None, typer.Option("--top", help="The K best, whatever their probability.", min=1)
    ] = None,
    min_prob: Annotated[
        float | None,
        typer.Option("--min-prob", help="Every image at or above this probability.", min=0, max=1),
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the photos of class NAME, best first, with their probability."""
    with _library(library) as lib:
        matches = lib.find(name, top=top, min_prob=min_prob)
        _messages(lib)
    _print_matches(matches, "probability", as_json)


@app.command()
@handle_errors
def similar(
    image: Annotated[Path, typer.Argument(help="A photo, indexed or not.")],
    top: Annotated[int, typer.Option("--top", help="How many to show.", min=1)] = 20,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the indexed photos most like IMAGE, with their cosine similarity."""
    with _library(library) as lib:
        matches = lib.similar(str(image), top=top)
        _messages(lib)
    _print_matches(matches, "similarity", as_json)


# ------------------------------------------------------------------------------- status
@app.command()
@handle_errors
def status(
    library: LibraryOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="List the files that failed.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show what the library holds: counts, backbone, classes, search index, failures."""
    with _library(library) as lib:
        info = lib.status()
        failures = lib.failures() if failed else []
    if as_json:
        if failed:
            info["failures"] = [{"path": p, "reason": r} for p, r in failures]
        _echo_json(info)
        return
    if failed:
        for path, reason in failures:
            _echo_path_line("", path + f"\t{reason}")
        return
    typer.echo(f"library   {info['library']}")
    typer.echo(
        f"images    {info['images']} indexed, {info['failed']} failed, {info['pending']} pending"
    )
    typer.echo(f"backbone  {info['backbone'] or 'none yet (run finder index)'}")
    if info["backbone_info"]:
        typer.echo(f"precision {info['backbone_info']['precision']}")
    typer.echo(f"index     {info['index'] or '-'}")
    names = ", ".join(info["class_names"]) or "none"
    typer.echo(f"classes   {info['classes']}: {names}")


@app.command()
@handle_errors
def backbones(as_json: JsonOpt = False) -> None:
    """List the backbones a new library can be indexed with."""
    from finder.embed.registry import BACKBONES, DEFAULT_BACKBONE

    rows = [
        {
            "name": s.name,
            "dim": s.dim,
            "input_size": list(s.input_size) if s.input_size else None,
            "gflops": s.gflops,
            "default": s.name == DEFAULT_BACKBONE,
            "description": s.description,
        }
        for s in BACKBONES.values()
    ]
    if as_json:
        _echo_json(rows)
        return
    base = BACKBONES[DEFAULT_BACKBONE].gflops or 1.0
    for r in rows:
        cost = f"{r['gflops'] / base:.2f}x" if r["gflops"] else "?"
        typer.echo(
            f"{r['name']:<18} {str(r['dim'] or '-'):>5}-d  cost {cost:>6}  {r['description']}"
        )


# ------------------------------------------------------------------------------- eval
@app.command("eval")
@handle_errors
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="A folder with one sub-folder per class.")],
    library: LibraryOpt = None,
    backbone: Annotated[str | None, typer.Option("--backbone")] = None,
    model: Annotated[Path | None, typer.Option("--model")] = None,
    weights: Annotated[str | None, typer.Option("--weights")] = None,
    ks: Annotated[
        str, typer.Option("--k", help="Examples per class, comma-separated.")
    ] = "1,2,5,10",
    trials: Annotated[int, typer.Option("--trials", min=1)] = 10,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    views: ViewsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure few-shot classes on a labelled dataset (indexed into the library first)."""
    from finder.learn import evaluate as ev
    from finder.errors import UsageError
    from finder.library import BackboneChoice

    try:
        k_list = tuple(int(k) for k in ks.split(",") if k.strip())
    except ValueError:
        raise UsageError(f"--k takes whole numbers separated by commas, not {ks!r}") from None
    choice = BackboneChoice(
        name=backbone,
        weights=weights,
        model=str(model) if model is not None else None,
        views=views,
    )
    view = _ProgressView(quiet or as_json)
    with _library(library, backbone=choice) as lib:
        try:
            lib.index([str(dataset)], progress=view)
        finally:
            view.stop()
        paths, X = lib.vectors_under(str(dataset))
    labels = ev.labels_from_paths(paths)
    groups = ev.groups_from_paths(paths)
    result = {
        "dataset": str(dataset),
        "few_shot": ev.few_shot(X, labels, ks=k_list, trials=trials, seed=seed, groups=groups),
        "classic": ev.classic(X, labels, seed=seed),
    }
    if as_json:
        _echo_json(result)
        return
    from rich.console import Console

    console = Console()
    for table in ev.render(result):
        console.print(table)


def main() -> None:
    """Console-script entry point."""
    # TensorFlow's C++ start-up chatter is noise to a person using the command.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:  # recent typer vendors click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover - older typer on click
        from click import exceptions as cx

    if len(sys.argv) == 1:
        sys.argv.append("--help")
    try:
        code = app(standalone_mode=False)
    except cx.ClickException as e:  # bad flags and arguments: one line, not a usage page
        ctx = getattr(e, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        _err(f"error: {e.format_message()}{hint}")
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        _err("interrupted")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
