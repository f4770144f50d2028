"""``finder learn``, ``classes``, ``forget``, ``find``, ``similar``, ``tag``: classes, answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finder.errors import UsageError
from finder.show import app as ui
from finder.show import results as out
from finder.show import text
from finder.store.facts import Filters


@ui.command()
@ui.handle_errors
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
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Learn class NAME from example photos; learning it again refines it."""
    positives = [str(p) for p in (examples or [])] + [str(p) for p in (add or [])]
    with ui.open_library(library) as lib:
        record = lib.learn(name, positives, negatives=[str(p) for p in (negatives or [])])
        ui.print_messages(lib)
    if as_json:
        ui.echo_json(text.class_json(record))
    else:
        typer.echo(text.learned_line(record))


@ui.command()
@ui.handle_errors
def classes(
    library: ui.LibraryOpt = None,
    examples: Annotated[
        str | None,
        typer.Option("--examples", metavar="NAME", help="List the examples of class NAME."),
    ] = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """List the learned classes (or one class's examples)."""
    with ui.open_library(library) as lib:
        if examples is not None:
            rows = lib.examples(examples)
            if as_json:
                ui.echo_json(
                    [{"path": p, "label": "positive" if lab else "negative"} for p, lab in rows]
                )
            else:
                ui.echo_lines(text.example_lines(rows))
            return
        records = lib.classes()
    if as_json:
        ui.echo_json([text.class_json(r) for r in records])
    else:
        ui.echo_lines(text.class_lines(records))


@ui.command()
@ui.handle_errors
def forget(
    name: Annotated[str, typer.Argument(help="Class to remove.", metavar="NAME")],
    library: ui.LibraryOpt = None,
) -> None:
    """Remove a learned class and its examples."""
    with ui.open_library(library) as lib:
        forgotten = lib.forget(name)
    typer.echo(f"forgot {text.escape(forgotten)!r}")


@ui.command()
@ui.handle_errors
@out.with_filters
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
    filters: Filters | None = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Print the photos of class NAME, best first, with their probability; the filters narrow
    the answer (exactly: every photo that passes and matches), --copy/--link export it."""
    out.check_output(as_json, print0)
    export_to = out.export_choice(copy, link, hardlink)
    with ui.open_library(library) as lib:
        if review is not None:
            if filters is not None:
                raise UsageError("--review picks photos to mark: it takes no filters")
            matches = lib.review(name, review)
        else:
            matches = lib.find(name, top=top, min_prob=min_prob, filters=filters, sort=sort)
        ui.print_messages(lib)
    out.export_matches(matches, export_to)
    out.print_matches(matches, "probability", as_json=as_json, print0=print0, dates=sort == "date")


@ui.command()
@ui.handle_errors
@out.with_filters
def similar(
    image: Annotated[Path, typer.Argument(help="A photo, indexed or not.", metavar="IMAGE")],
    top: Annotated[int, typer.Option("--top", metavar="K", help="How many to show.", min=1)] = 20,
    sort: out.SortOpt = "score",
    print0: out.Print0Opt = False,
    filters: Filters | None = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Print the indexed photos most like IMAGE, with their cosine similarity; the filters
    narrow the answer (the TOP most alike among the photos that pass)."""
    out.check_output(as_json, print0)
    with ui.open_library(library) as lib:
        matches = lib.similar(str(image), top=top, filters=filters, sort=sort)
        ui.print_messages(lib)
    out.print_matches(matches, "similarity", as_json=as_json, print0=print0, dates=sort == "date")


@ui.command()
@ui.handle_errors
@out.with_filters
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
    filters: Filters | None = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Write NAME as a keyword into the XMP sidecars of the photos `finder find NAME` gives
    (photo.jpg.xmp, or an existing photo.xmp; merged with what a sidecar holds), for digiKam,
    darktable and Lightroom. The photos themselves are never touched."""
    from finder.act.xmp import tag_many

    with ui.open_library(library) as lib:
        matches = lib.find(name, top=top, min_prob=min_prob, filters=filters)
        ui.print_messages(lib)
    done, errors = tag_many([m.path for m in matches], name, dry_run=dry_run)
    out.tag_report(done, errors, dry_run=dry_run, as_json=as_json)
    if errors:
        raise typer.Exit(1)
