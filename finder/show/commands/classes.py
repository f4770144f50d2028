"""``finder learn``, ``classes``, ``forget``, ``find``, ``similar``, ``tag``: classes, answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from finder.errors import UsageError
from finder.show import app as ui
from finder.show import results as out
from finder.show import text

ClassArg = ui.argument(str, "NAME", "Class name, e.g. cat.")
ExamplesArg = ui.argument(
    list[Path] | None,
    "EXAMPLE...",
    "Example photos of the class, or folders of them.",
    show_default=False,
)
AddOpt = ui.option(
    list[Path] | None,
    "--add",
    metavar="PATH",
    help="More example photos (repeatable), e.g. from `find` output.",
)
NotOpt = ui.option(
    list[Path] | None,
    "--not",
    metavar="PATH",
    help="Photos that are NOT of the class (repeatable).",
)
ExamplesOfOpt = ui.option(
    str | None, "--examples", metavar="NAME", help="List the examples of class NAME."
)
ForgetArg = ui.argument(str, "NAME", "Class to remove.")


def _top(help: str) -> Any:
    """``--top K`` of the photos of a class (``find``, ``tag``), with the command's help."""
    return ui.option(int | None, "--top", metavar="K", help=help, min=1)


def _min_prob(help: str) -> Any:
    """``--min-prob P`` of the photos of a class (``find``, ``tag``), with the command's help."""
    return ui.option(float | None, "--min-prob", metavar="P", help=help, min=0, max=1)


TopOpt = _top("The K best, whatever their probability.")
MinProbOpt = _min_prob("Every image at or above this probability.")
ReviewOpt = ui.option(
    int | None,
    "--review",
    metavar="N",
    help="Instead: the N photos whose verdict would teach NAME most (near the cut-off, "
    "unlike each other); mark them with `learn NAME --add` / `--not`.",
    min=1,
)
ImageArg = ui.argument(Path, "IMAGE", "A photo, indexed or not.")
SimilarTopOpt = ui.option(int, "--top", metavar="K", help="How many to show.", min=1)
DryRunOpt = ui.option(bool, "--dry-run", help="Only list the sidecars that would be written.")
TagTopOpt = _top("Only the K best photos of the class.")
TagMinProbOpt = _min_prob("Photos at or above this probability.")


def learn(
    name: ClassArg,
    examples: ExamplesArg = None,
    add: AddOpt = None,
    negatives: NotOpt = None,
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
        if not record["n_neg"]:
            ui.say(text.review_hint(record["name"]))


def classes(
    library: ui.LibraryOpt = None, examples: ExamplesOfOpt = None, as_json: ui.JsonOpt = False
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


def forget(name: ForgetArg, library: ui.LibraryOpt = None) -> None:
    """Remove a learned class and its examples."""
    with ui.open_library(library) as lib:
        forgotten = lib.forget(name)
    typer.echo(f"forgot {text.escape(forgotten)!r}")


def find(
    name: ui.NameArg,
    top: TopOpt = None,
    min_prob: MinProbOpt = None,
    sort: out.SortOpt = "score",
    copy: out.CopyOpt = None,
    link: out.LinkOpt = None,
    hardlink: out.HardlinkOpt = None,
    print0: out.Print0Opt = False,
    review: ReviewOpt = None,
    after: out.AfterOpt = None,
    before: out.BeforeOpt = None,
    camera: out.CameraOpt = None,
    under: out.UnderOpt = None,
    near: out.NearOpt = None,
    within: out.WithinOpt = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Print the photos of class NAME, best first, with their probability; the filters narrow
    the answer (exactly: every photo that passes and matches), --copy/--link export it."""
    filters = out.filters_from(after, before, camera, under, near, within)
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
        out.say_if_empty(lib, matches, name, as_json, top, min_prob, filters, review)
    out.export_matches(matches, export_to)
    out.print_matches(matches, "probability", as_json=as_json, print0=print0, dates=sort == "date")


def similar(
    image: ImageArg,
    top: SimilarTopOpt = 20,
    sort: out.SortOpt = "score",
    print0: out.Print0Opt = False,
    after: out.AfterOpt = None,
    before: out.BeforeOpt = None,
    camera: out.CameraOpt = None,
    under: out.UnderOpt = None,
    near: out.NearOpt = None,
    within: out.WithinOpt = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Print the indexed photos most like IMAGE, with their cosine similarity; the filters
    narrow the answer (the TOP most alike among the photos that pass)."""
    filters = out.filters_from(after, before, camera, under, near, within)
    out.check_output(as_json, print0)
    with ui.open_library(library) as lib:
        matches = lib.similar(str(image), top=top, filters=filters, sort=sort)
        ui.print_messages(lib)
        out.say_if_empty(lib, matches, None, as_json, top, None, filters)
    out.print_matches(matches, "similarity", as_json=as_json, print0=print0, dates=sort == "date")


def tag(
    name: ui.NameArg,
    dry_run: DryRunOpt = False,
    top: TagTopOpt = None,
    min_prob: TagMinProbOpt = None,
    after: out.AfterOpt = None,
    before: out.BeforeOpt = None,
    camera: out.CameraOpt = None,
    under: out.UnderOpt = None,
    near: out.NearOpt = None,
    within: out.WithinOpt = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Write NAME as a keyword into the XMP sidecars of the photos `finder find NAME` gives
    (photo.jpg.xmp, or an existing photo.xmp; merged with what a sidecar holds), for digiKam,
    darktable and Lightroom. The photos themselves are never touched."""
    from finder.act.xmp import tag_many

    filters = out.filters_from(after, before, camera, under, near, within)
    with ui.open_library(library) as lib:
        matches = lib.find(name, top=top, min_prob=min_prob, filters=filters)
        ui.print_messages(lib)
        out.say_if_empty(
            lib, matches, name, as_json, top, min_prob, filters, before="nothing to tag: "
        )
    done, errors = tag_many([m.path for m in matches], name, dry_run=dry_run)
    out.tag_report(done, errors, dry_run=dry_run, as_json=as_json)
    if errors:
        raise typer.Exit(1)
