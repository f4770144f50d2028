"""``finder learn``, ``classes``, ``rename``, ``forget``, ``restore``, ``find``, ``similar``,
``tag``: classes, answers."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from finder.errors import ClassExists, FinderError, UsageError
from finder.library import TOP
from finder.show import app as ui
from finder.show import results as out
from finder.show import text
from finder.show.commands import filing

ClassArg = ui.argument(str, "NAME", "Class name, e.g. cat.")
LearnNameArg = ui.argument(
    str | None,
    "NAME",
    "Class name, e.g. cat (with --import: only this class of the file; none with --from-*).",
    show_default=False,
)
ExamplesArg = ui.argument(
    list[Path] | None,
    "EXAMPLE...",
    "Example photos of the class, or folders of them; a video's moment as clip.mp4@0:12.",
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
DropOpt = ui.option(
    list[str] | None,
    "--drop",
    metavar="PHOTO",
    help="Take back the mark (example or counter-example) of PHOTO, or of every photo under "
    "a folder (repeatable); the photo need not exist any more.",
)
ImportOpt = ui.option(
    Path | None,
    "--import",
    metavar="FILE",
    help="Learn the classes of FILE (made by `finder classes --export`), their photos "
    "matched with this library's by path, then by content.",
)
ExamplesOfOpt = ui.option(
    str | None, "--examples", metavar="NAME", help="List the examples of class NAME."
)
ForgottenOpt = ui.option(
    bool, "--forgotten", help="List the forgotten classes (kept 30 days; `finder restore NAME`)."
)
ExportOpt = ui.option(
    str | None,
    "--export",
    metavar="FILE",
    help="Write every class (marks by path and content fingerprint, their vectors, the "
    "backbone) to FILE ('-': stdout), for `finder learn --import FILE` in another library.",
)
ForgetArg = ui.argument(str, "NAME", "Class to forget.")
YesOpt = ui.option(bool, "--yes", "-y", help="Do not ask first (on a terminal it asks).")
RestoreArg = ui.argument(str, "NAME", "Forgotten class to bring back.")
OldArg = ui.argument(str, "OLD", "The class's name now.")
NewArg = ui.argument(str, "NEW", "Its new name.")


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
    help="Instead: a strip of N photos to judge, most whose verdict would teach NAME most (near "
    "the cut-off, unlike each other), some drawn at random (what the estimate in `classes "
    "--json` stands on); with --json each has its guess and whether it was drawn at random. "
    "Mark them with `learn NAME --add` / `--not`.",
    min=1,
)
ImageArg = ui.argument(
    Path, "IMAGE", "A photo, indexed or not; or a video with --at (or written clip.mp4@0:12)."
)
AtOpt = ui.option(
    str | None,
    "--at",
    metavar="TIME",
    help="IMAGE is a video: the moment to look for, in seconds, M:SS or H:MM:SS (e.g. 0:12).",
    show_default=False,
)
SimilarTopOpt = ui.option(int, "--top", metavar="K", help="How many to show.", min=1)
DryRunOpt = ui.option(bool, "--dry-run", help="Only list the sidecars that would be written.")
TagTopOpt = _top("Only the K best photos of the class.")
TagMinProbOpt = _min_prob("Photos at or above this probability.")


def learn(
    name: LearnNameArg = None,
    examples: ExamplesArg = None,
    add: AddOpt = None,
    negatives: NotOpt = None,
    drop: DropOpt = None,
    from_file: ImportOpt = None,
    from_keywords: filing.FromKeywordsOpt = False,
    from_folders: filing.FromFoldersOpt = None,
    min_photos: filing.MinOpt = 5,
    only: filing.OnlyOpt = None,
    parents: filing.ParentsOpt = False,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Learn class NAME from example photos; learning it again refines it (--add, --not,
    --drop). --import FILE learns the classes another library exported. --from-keywords /
    --from-folders: a class of each keyword or folder the photos are filed under (then
    `finder suggest`)."""
    if from_keywords or from_folders is not None:
        if name is not None or examples or add or negatives or drop or from_file is not None:
            raise UsageError("--from-keywords and --from-folders take no NAME nor examples")
        with ui.open_library(library) as lib:
            filing.learn_from_filing(
                lib, from_keywords, from_folders, min_photos, only, parents, as_json
            )
        return
    if only is not None or parents:
        raise UsageError("--only and --parents go with --from-keywords or --from-folders")
    positives = [str(p) for p in (examples or [])] + [str(p) for p in (add or [])]
    if from_file is not None:
        if positives or negatives or drop:
            raise UsageError("--import takes no photos: import first, then refine with learn")
        _import(from_file, name, library, as_json)
        return
    if name is None:
        raise UsageError("learn needs a class NAME and example photos (or --import FILE)")
    with ui.open_library(library) as lib:
        before = {p for p, _ in lib.examples(name)} if drop else set()
        shown = [str(p) for p in (add or [])] + [str(p) for p in (negatives or [])]
        record = lib.learn(
            name,
            positives,
            negatives=[str(p) for p in (negatives or [])],
            drop=drop or (),
            origins=dict.fromkeys(shown, TOP),  # marks on photos finder showed
        )
        ui.print_messages(lib)
        if drop:
            taken = len(before - {p for p, _ in lib.examples(record["name"])})
            ui.say(f"took back {text.counted(taken, 'mark')}")
    if as_json:
        ui.echo_json(text.class_json(record))
    else:
        typer.echo(text.learned_line(record))
        if not record["n_neg"]:
            ui.say(text.review_hint(record["name"]))


def _import(file: Path, name: str | None, library: Path | None, as_json: bool) -> None:
    """``learn [NAME] --import FILE``."""
    with ui.open_library(library) as lib:
        report = lib.import_classes(file, names=None if name is None else [name])
        ui.print_messages(lib)
    if not report.classes:
        raise UsageError(f"{file} holds no classes")
    if as_json:
        ui.echo_json([_import_json(c) for c in report.classes])
    else:
        for result in report.classes:
            out, err = text.import_lines(result)
            ui.echo_lines(out)
            for line in err:
                sys.stderr.buffer.write(line + b"\n")
            sys.stderr.flush()
    if not report.imported:
        raise typer.Exit(1)


def _import_json(result: Any) -> dict[str, Any]:
    record = result.record
    return {
        "name": result.name,
        "imported": record is not None,
        **({k: v for k, v in text.class_json(record).items() if k != "name"} if record else {}),
        "by_path": result.by_path,
        "by_fingerprint": result.by_fingerprint,
        "by_vector": result.by_vector,
        "embedded": result.embedded,
        "missing": result.missing,
        "reason": result.reason,
    }


def classes(
    library: ui.LibraryOpt = None,
    examples: ExamplesOfOpt = None,
    forgotten: ForgottenOpt = False,
    export: ExportOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """List the learned classes (or one class's examples, or the forgotten classes), or
    export them (--export FILE)."""
    if sum(x not in (None, False) for x in (examples, export, forgotten)) > 1:
        raise UsageError("give one of --examples, --forgotten and --export")
    if export is not None:
        _export(export, library, as_json)
        return
    with ui.open_library(library) as lib:
        if forgotten:
            kept = lib.forgotten()
            if as_json:
                ui.echo_json([text.forgotten_json(r) for r in kept])
            else:
                ui.echo_lines(text.forgotten_lines(kept))
            return
        if examples is not None:
            rows = lib.example_origins(examples)
            if as_json:  # origin: where the mark comes from (null: not known)
                ui.echo_json(
                    [
                        {"path": p, "label": "positive" if lab else "negative", "origin": o}
                        for p, lab, o in rows
                    ]
                )
            else:
                ui.echo_lines(text.example_lines((p, lab) for p, lab, _ in rows))
            return
        records = lib.classes()
        if as_json:  # each with how good its answer is (null until enough random marks)
            estimates = [estimate_of(lib, r["name"]) for r in records]
    if as_json:
        ui.echo_json(
            [text.class_json(r) | {"estimate": e} for r, e in zip(records, estimates, strict=True)]
        )
    else:
        ui.echo_lines(text.class_lines(records))


def estimate_of(lib: Any, name: str) -> dict | None:
    """Class ``name``'s estimate (``Library.estimate``); None when it has none, or cannot have
    one here (learned with another backbone)."""
    try:
        return lib.estimate(name)
    except FinderError:
        return None


def _export(file: str, library: Path | None, as_json: bool) -> None:
    """``classes --export FILE``."""
    if not file:
        raise UsageError("--export needs a file, not an empty path")
    with ui.open_library(library) as lib:
        if file == "-":
            document = lib.export_classes()
        else:
            document = lib.export_classes(file)
    if file == "-":
        typer.echo(json.dumps(document, indent=1))
    marks = [e["label"] for c in document["classes"] for e in c["examples"]]
    summary = {
        "file": file,
        "classes": [c["name"] for c in document["classes"]],
        "examples": marks.count(1),
        "negatives": marks.count(0),
    }
    if as_json and file != "-":
        ui.echo_json(summary)
    else:
        line = (
            f"exported {text.counted(len(summary['classes']), 'class', 'classes')} "
            f"({text.counted(summary['examples'], 'example')}, "
            f"{text.counted(summary['negatives'], 'counter-example')}) to {text.escape(file)}"
        )
        (ui.say if file == "-" else typer.echo)(line)


def forget(name: ForgetArg, yes: YesOpt = False, library: ui.LibraryOpt = None) -> None:
    """Forget a learned class: gone from classes, answers and the page, kept 30 days for
    `finder restore NAME`. On a terminal it asks first (--yes does not)."""
    with ui.open_library(library) as lib:
        record = lib.class_record(name)
        stored = record["name"]
        if not yes and sys.stdin.isatty():
            question = (
                f"forget class {text.escape(stored)!r} "
                f"({text.counted(record['n_pos'], 'example')}, "
                f"{text.counted(record['n_neg'], 'counter-example')})? It is kept 30 days "
                f"(`finder restore {shlex.quote(stored)}` brings it back)"
            )
            if not typer.confirm(question, default=False, err=True):
                ui.say(f"{text.escape(stored)!r} is kept as it was")
                raise typer.Exit(1)
        forgotten = lib.forget(stored)
    typer.echo(f"forgot {text.escape(forgotten)!r}")
    ui.say(f"kept 30 days: `finder restore {shlex.quote(forgotten)}` brings it back")


def restore(name: RestoreArg, library: ui.LibraryOpt = None, as_json: ui.JsonOpt = False) -> None:
    """Bring back a forgotten class as it was (within 30 days of `finder forget`)."""
    with ui.open_library(library) as lib:
        try:
            record = lib.restore(name)
        except ClassExists as e:
            stored = lib.class_record(name)["name"]  # the class learned anew
            if not any(r["name"] == stored for r in lib.forgotten()):
                raise
            # say how to rename it, as a person types it here
            raise ClassExists(f"{e.worded()} (`finder rename {shlex.quote(stored)} NEW`)") from None
    if as_json:
        ui.echo_json(text.class_json(record))
    else:
        typer.echo(
            f"restored {text.escape(record['name'])!r}: "
            f"{text.counted(record['n_pos'], 'example')} and "
            f"{text.counted(record['n_neg'], 'counter-example')} (cut-off "
            f"{record['threshold']:.2f})"
        )


def rename(
    old: OldArg, new: NewArg, library: ui.LibraryOpt = None, as_json: ui.JsonOpt = False
) -> None:
    """Rename class OLD to NEW (its examples and cut-off go with it)."""
    with ui.open_library(library) as lib:
        stored = lib.class_record(old)["name"]
        record = lib.rename(stored, new)
    if as_json:
        ui.echo_json(text.class_json(record))
    else:
        typer.echo(f"renamed {text.escape(stored)!r} to {text.escape(record['name'])!r}")


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
            matches = lib.strip(name, review).photos  # recorded: its draws' marks count
        else:
            matches = lib.find(name, top=top, min_prob=min_prob, filters=filters, sort=sort)
        ui.print_messages(lib)
        out.say_if_empty(lib, matches, name, as_json, top, min_prob, filters, review)
    out.export_matches(matches, export_to)
    out.print_matches(matches, "probability", as_json=as_json, print0=print0, dates=sort == "date")


def similar(
    image: ImageArg,
    at: AtOpt = None,
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
    """Print the indexed photos (and videos' moments) most like IMAGE, with their cosine
    similarity; the filters narrow the answer (the TOP most alike among the photos that
    pass)."""
    filters = out.filters_from(after, before, camera, under, near, within)
    out.check_output(as_json, print0)
    with ui.open_library(library) as lib:
        matches = lib.similar(str(image), top=top, filters=filters, sort=sort, at=at)
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
