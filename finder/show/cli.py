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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

from finder.errors import FinderError, UsageError
from finder.show import results as out
from finder.show import text
from finder.show.progress import ProgressView, say


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
    from finder.embed.cluster import LOCAL, looks_like_address

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

LibraryOpt = Annotated[
    Path | None,
    typer.Option(
        "--library",
        "-L",
        envvar="FINDER_LIBRARY",
        metavar="PATH",
        help="Library folder (default: $FINDER_LIBRARY, else ~/.local/share/finder).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``app.command`` with finder's help layout (arguments shown as ``ROOT...``)."""
    return app.command(*args, cls=_Command, **kwargs)


_err = say


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


def _echo_lines(lines: list[str] | list[bytes]) -> None:
    for line in lines:
        typer.echo(line)


def _messages(lib: Any) -> None:
    for m in lib.messages:
        _err(m)


# ------------------------------------------------------------------------------- index
BackboneOpt = Annotated[
    str | None,
    typer.Option(
        "--backbone", metavar="NAME", help="Backbone for a new library (see `finder backbones`)."
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model", metavar="PATH", help="A local model file: .tflite, or .keras/.h5 with --layer."
    ),
]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        metavar="FILE",
        help="Local weights FILE for the backbone instead of the ImageNet download "
        "('none': random weights, for testing).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
ViewsOpt = Annotated[
    int | None,
    typer.Option(
        "--views",
        metavar="N",
        help="Views of each image averaged into its vector, for a new library: 1 (default), 2 "
        "(and its mirror) or 4 (and a centre crop and its mirror): better classes, 2-4x the "
        "embedding time.",
    ),
]


@command()
@handle_errors
def index(
    roots: Annotated[
        list[Path], typer.Argument(help="Folders (or files) to index.", metavar="ROOT...")
    ],
    library: LibraryOpt = None,
    backbone: BackboneOpt = None,
    model: ModelOpt = None,
    layer: Annotated[
        str | None,
        typer.Option("--layer", metavar="NAME", help="Layer of a .keras/.h5 model to embed with."),
    ] = None,
    weights: WeightsOpt = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also index hidden files.")] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", metavar="GLOB", help="Skip paths matching GLOB (repeatable)."),
    ] = None,
    quiet: QuietOpt = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", metavar="N", help="Images per model call.", min=1)
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", metavar="N", help="Decoding threads.", min=1)
    ] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option(
            "--memory-budget",
            metavar="SIZE",
            help="Memory for the search index, e.g. 2GB (remembered).",
        ),
    ] = None,
    views: ViewsOpt = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Embed on a Ray cluster: alone, one started here for the run; 'auto', the "
            "one `ray start` made; or HOST:PORT. The folders must be at the same path on every "
            "node. Needs pip install 'finder[ray]'.",
        ),
    ] = None,
    thumbnails: Annotated[
        bool,
        typer.Option(
            "--thumbnails", help="Also make the thumbnails of the page (`finder serve`) now."
        ),
    ] = False,
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
    )
    view = ProgressView(quiet or as_json)
    with _library(
        library,
        backbone=choice,
        batch_size=batch_size,
        workers=workers,
        memory_budget=_parse_bytes(memory_budget) if memory_budget else None,
    ) as lib:
        try:
            summary = lib.index(
                [str(r) for r in roots],
                hidden=hidden,
                exclude=exclude or [],
                progress=view,
                ray=ray,
                thumbnails=thumbnails,
            )
        finally:
            view.stop()
    for m in summary.messages:
        _err(m)
    if as_json:
        _echo_json(summary.to_dict())
    else:
        typer.echo(text.index_summary_line(summary))
    if summary.interrupted:
        raise typer.Exit(130)


def _parse_bytes(text: str) -> int:
    from finder.errors import UsageError

    units = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30}
    units |= {"GB": 2**30, "T": 2**40, "TB": 2**40}
    t = text.strip().upper().replace("IB", "B")
    num = t.rstrip("KMGTB")
    try:
        value = int(float(num) * units[t[len(num) :]])
    except (ValueError, KeyError, OverflowError):
        raise UsageError(f"--memory-budget: cannot read {text!r} (try 2GB or 500MB)") from None
    if value <= 0:
        raise UsageError(f"--memory-budget must be more than 0 bytes, not {text!r} (try 2GB)")
    return value


# ------------------------------------------------------------------------------- learn
@command()
@handle_errors
def learn(
    name: Annotated[str, typer.Argument(help="Class name, e.g. cat.", metavar="NAME")],
    examples: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Example photos of the class, or folders of them.",
            metavar="EXAMPLE...",
            show_default=False,
        ),
    ] = None,
    add: Annotated[
        list[Path] | None,
        typer.Option(
            "--add",
            metavar="PATH",
            help="More example photos (repeatable), e.g. from `find` output.",
        ),
    ] = None,
    negatives: Annotated[
        list[Path] | None,
        typer.Option(
            "--not", metavar="PATH", help="Photos that are NOT of the class (repeatable)."
        ),
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
        _echo_json(text.class_json(record))
    else:
        typer.echo(text.learned_line(record))


@command()
@handle_errors
def classes(
    library: LibraryOpt = None,
    examples: Annotated[
        str | None,
        typer.Option("--examples", metavar="NAME", help="List the examples of class NAME."),
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
                _echo_lines(text.example_lines(rows))
            return
        records = lib.classes()
    if as_json:
        _echo_json([text.class_json(r) for r in records])
    else:
        _echo_lines(text.class_lines(records))


@command()
@handle_errors
def forget(
    name: Annotated[str, typer.Argument(help="Class to remove.", metavar="NAME")],
    library: LibraryOpt = None,
) -> None:
    """Remove a learned class and its examples."""
    with _library(library) as lib:
        forgotten = lib.forget(name)
    typer.echo(f"forgot {text.escape(forgotten)!r}")


# ------------------------------------------------------------------------------- search
@command()
@handle_errors
def find(
    name: Annotated[str, typer.Argument(help="A learned class.", metavar="NAME")],
    top: Annotated[
        int | None,
        typer.Option("--top", metavar="K", help="The K best, whatever their probability.", min=1),
    ] = None,
    min_prob: Annotated[
        float | None,
        typer.Option(
            "--min-prob",
            metavar="P",
            help="Every image at or above this probability.",
            min=0,
            max=1,
        ),
    ] = None,
    after: out.AfterOpt = None,
    before: out.BeforeOpt = None,
    camera: out.CameraOpt = None,
    under: out.UnderOpt = None,
    near: out.NearOpt = None,
    within: out.WithinOpt = None,
    sort: out.SortOpt = "score",
    copy: out.CopyOpt = None,
    link: out.LinkOpt = None,
    hardlink: out.HardlinkOpt = None,
    print0: out.Print0Opt = False,
    review: Annotated[
        int | None,
        typer.Option(
            "--review",
            metavar="N",
            help="Instead: the N photos whose verdict would teach NAME most (near the cut-off, "
            "unlike each other); mark them with `learn NAME --add` / `--not`.",
            min=1,
        ),
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the photos of class NAME, best first, with their probability; the filters narrow
    the answer (exactly: every photo that passes and matches), --copy/--link export it."""
    out.check_output(as_json, print0)
    filters = out.filters_from(after, before, camera, under, near, within)
    export_to = out.export_choice(copy, link, hardlink)
    with _library(library) as lib:
        if review is not None:
            if filters is not None:
                raise UsageError("--review picks photos to mark: it takes no filters")
            matches = lib.review(name, review)
        else:
            matches = lib.find(name, top=top, min_prob=min_prob, filters=filters, sort=sort)
        _messages(lib)
    out.export_matches(matches, export_to)
    out.print_matches(matches, "probability", as_json=as_json, print0=print0, dates=sort == "date")


@command()
@handle_errors
def similar(
    image: Annotated[Path, typer.Argument(help="A photo, indexed or not.", metavar="IMAGE")],
    top: Annotated[int, typer.Option("--top", metavar="K", help="How many to show.", min=1)] = 20,
    after: out.AfterOpt = None,
    before: out.BeforeOpt = None,
    camera: out.CameraOpt = None,
    under: out.UnderOpt = None,
    near: out.NearOpt = None,
    within: out.WithinOpt = None,
    sort: out.SortOpt = "score",
    print0: out.Print0Opt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the indexed photos most like IMAGE, with their cosine similarity; the filters
    narrow the answer (the TOP most alike among the photos that pass)."""
    out.check_output(as_json, print0)
    filters = out.filters_from(after, before, camera, under, near, within)
    with _library(library) as lib:
        matches = lib.similar(str(image), top=top, filters=filters, sort=sort)
        _messages(lib)
    out.print_matches(matches, "similarity", as_json=as_json, print0=print0, dates=sort == "date")


@command()
@handle_errors
def tag(
    name: Annotated[str, typer.Argument(help="A learned class.", metavar="NAME")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the sidecars that would be written.")
    ] = False,
    top: Annotated[
        int | None,
        typer.Option("--top", metavar="K", help="Only the K best photos of the class.", min=1),
    ] = None,
    min_prob: Annotated[
        float | None,
        typer.Option(
            "--min-prob", metavar="P", help="Photos at or above this probability.", min=0, max=1
        ),
    ] = None,
    after: out.AfterOpt = None,
    before: out.BeforeOpt = None,
    camera: out.CameraOpt = None,
    under: out.UnderOpt = None,
    near: out.NearOpt = None,
    within: out.WithinOpt = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write NAME as a keyword into the XMP sidecars of the photos `finder find NAME` gives
    (photo.jpg.xmp, or an existing photo.xmp; merged with what a sidecar holds), for digiKam,
    darktable and Lightroom. The photos themselves are never touched."""
    from finder.act.xmp import tag_many

    filters = out.filters_from(after, before, camera, under, near, within)
    with _library(library) as lib:
        matches = lib.find(name, top=top, min_prob=min_prob, filters=filters)
        _messages(lib)
    done, errors = tag_many([m.path for m in matches], name, dry_run=dry_run)
    out.tag_report(done, errors, dry_run=dry_run, as_json=as_json)
    if errors:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------- status
@command()
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
    _echo_lines(text.failure_lines(failures) if failed else text.status_lines(info))


@command()
@handle_errors
def check(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Check the library's files: the catalog (SQLite's integrity check and its records),
    vectors against the catalog, learned classes against the backbone. One line per problem;
    exit code 3 when there is any (then run `finder repair`)."""
    with _library(library) as lib:
        problems = lib.check()
    if as_json:
        _echo_json({"ok": not problems, "problems": [vars(p) for p in problems]})
    elif problems:
        for p in problems:
            typer.echo(text.escape(str(p)))
    else:
        typer.echo("no problems found")
    if problems:
        raise typer.Exit(3)


@command()
@handle_errors
def repair(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Repair a damaged library: restore the catalog from its newest good backup plus what can
    still be read, and reconcile it with the vectors; the next `finder index` re-embeds only
    what was lost."""
    with _library(library) as lib:
        report = lib.repair()
        _messages(lib)
    if as_json:
        _echo_json(report.to_dict())
        return
    if report.problems:
        typer.echo(f"catalog damaged: {report.problems[0]}")
        source = report.restored or "no backup (none was good)"
        salvaged = ", ".join(f"{n} {table}" for table, n in report.salvaged.items())
        typer.echo(f"restored from {source}; read back from the damaged catalog: {salvaged}")
        typer.echo(f"the damaged catalog is kept as {report.damaged_copy}")
    else:
        typer.echo("catalog: no damage")
    if report.vectors_reset:
        typer.echo(f"vector store unreadable: kept as {report.vectors_reset}, started anew")
    typer.echo(
        f"vectors: {report.vectors_dropped} dropped; {report.to_embed} images to embed "
        "(run `finder index` on your folders)"
    )


@app.command()
@handle_errors
def backbones(as_json: JsonOpt = False) -> None:
    """List the backbones a new library can be indexed with."""
    from finder.embed.registry import BACKBONES, DEFAULT_BACKBONE

    rows = text.backbone_rows(BACKBONES.values(), DEFAULT_BACKBONE)
    if as_json:
        _echo_json(rows)
    else:
        _echo_lines(text.backbone_lines(rows))


# ------------------------------------------------------------------------------- serve
@command()
@handle_errors
def serve(
    library: LibraryOpt = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", metavar="ADDRESS", help="Address to listen on (loopback unless you mean it)."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", metavar="N", help="Port to listen on (0: any free one).", min=0, max=65535
        ),
    ] = 8765,
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Do not open a browser; just print the URL.")
    ] = False,
) -> None:
    """Serve the library as a local web page: classes as grids of thumbnails, a click to
    teach them, photos like a photo. Prints the URL (with its access token) first."""
    from finder.show.web.server import serve as run

    run(library, host=host, port=port, open_browser=not no_open)


# ------------------------------------------------------------------------------- eval
@command("eval")
@handle_errors
def evaluate(
    datasets: Annotated[
        list[Path],
        typer.Argument(
            help="Folders with one sub-folder per class; several make one library.",
            metavar="DATASET...",
        ),
    ],
    library: LibraryOpt = None,
    backbone: BackboneOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    ks: Annotated[
        str | None,
        typer.Option(
            "--k",
            metavar="K,...",
            help="Examples per class, comma-separated (1,2,5,10; 5 with --feedback).",
        ),
    ] = None,
    trials: Annotated[
        int, typer.Option("--trials", metavar="N", help="Random trials per class.", min=1)
    ] = 10,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seed of the random draws (repeatable runs).")
    ] = 0,
    feedback: Annotated[
        int | None,
        typer.Option(
            "--feedback",
            metavar="R",
            help="Rounds of simulated clicks after learning, each taught through `learn --add "
            "/ --not` (the class is learned in the library, then forgotten).",
            min=0,
        ),
    ] = None,
    clicks: Annotated[
        int,
        typer.Option("--clicks", metavar="N", help="Photos marked per --feedback round.", min=1),
    ] = 10,
    shown: Annotated[
        str,
        typer.Option(
            "--shown",
            metavar="top|review",
            help="Which photos a round marks: top (the best-ranked unmarked) or review "
            "(`find NAME --review`).",
        ),
    ] = "top",
    views: ViewsOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure few-shot classes on labelled datasets (indexed into the library first; with
    --feedback the background of each class is the whole library, so use one that holds only
    the datasets)."""
    import numpy as np

    from finder.errors import UsageError
    from finder.learn import evaluate as ev
    from finder.library import BackboneChoice

    try:
        k_list = tuple(int(k) for k in (ks or "").split(",") if k.strip())
    except ValueError:
        raise UsageError(f"--k takes whole numbers separated by commas, not {ks!r}") from None
    if feedback is not None and len(k_list) > 1:
        raise UsageError("--feedback takes one --k")
    choice = BackboneChoice(
        name=backbone,
        weights=weights,
        model=str(model) if model is not None else None,
        views=views,
    )
    view = ProgressView(quiet or as_json)
    with _library(library, backbone=choice) as lib:
        try:
            lib.index([str(d) for d in datasets], progress=view)
        finally:
            view.stop()
        parts = [lib.vectors_under(str(d)) for d in datasets]
        paths = [p for part in parts for p in part[0]]
        X = np.concatenate([part[1] for part in parts])
        labels = ev.labels_from_paths(paths)
        groups = ev.groups_from_paths(paths)
        name = ", ".join(str(d) for d in datasets)
        if feedback is not None:
            from finder.learn.feedback import LibraryTeacher
            from finder.learn.feedback import feedback as run_feedback

            result: dict[str, Any] = {
                "dataset": name,
                "feedback": run_feedback(
                    X,
                    labels,
                    LibraryTeacher(lib, paths),
                    k=k_list[0] if k_list else 5,
                    rounds=feedback,
                    clicks=clicks,
                    shown=shown,
                    trials=trials,
                    seed=seed,
                    groups=groups,
                ),
            }
    if feedback is None:
        result = {
            "dataset": name,
            "few_shot": ev.few_shot(
                X, labels, ks=k_list or ev.DEFAULT_KS, trials=trials, seed=seed, groups=groups
            ),
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
