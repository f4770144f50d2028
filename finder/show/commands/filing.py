"""``finder learn --from-keywords / --from-folders`` and ``finder suggest``: classes made from
what the person filed, and finder filing the rest (``finder.filing``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finder.errors import UsageError
from finder.show import app as ui
from finder.show import results as out
from finder.show import text

if TYPE_CHECKING:
    from finder.library import Library

FromKeywordsOpt = ui.option(
    bool,
    "--from-keywords",
    help="Instead of NAME and examples: make a class of each keyword the photos are filed "
    "under (XMP sidecars, embedded XMP / IPTC) on at least --min photos, or refresh those made "
    "so (only the classes whose own photos changed, or whose counter-examples changed by more "
    "than 5 %, are trained again).",
)
FromFoldersOpt = ui.option(
    Path | None,
    "--from-folders",
    metavar="ROOT",
    help="Instead of NAME and examples: make a class of each folder under ROOT with at least "
    "--min photos (named after it), or refresh those made so. Folders named unsorted, inbox, "
    "todo, ... are not filing.",
    show_default=False,
)
MinOpt = ui.option(
    int, "--min", metavar="N", help="With --from-*: the photos a keyword or folder needs.", min=1
)
OnlyOpt = ui.option(
    str | None,
    "--only",
    metavar="PATTERN",
    help="With --from-*: only the keywords or folders whose path, name or class matches this "
    "shell pattern (any case), e.g. 'Animals/*'.",
    show_default=False,
)
ParentsOpt = ui.option(
    bool,
    "--parents",
    help="With --from-*: broad keywords and parent folders (Flowers over every species) "
    "become classes too.",
)

SuggestNameArg = ui.argument(
    str | None,
    "NAME",
    "A class made by learn --from-keywords or --from-folders (none: every such class with "
    "its count of suggestions).",
    show_default=False,
)
PhotosArg = ui.argument(
    list[Path] | None, "PHOTO...", "With --unapply: the photos.", show_default=False
)
ApplyOpt = ui.option(
    bool,
    "--apply",
    help="Write the class's keyword (its own hierarchy, e.g. Flowers|Daisy) into the "
    "suggested photos' XMP sidecars, merged with what they hold; the photos are never touched. "
    "A folder class is filed with --copy or --link instead.",
)
SuggestDryRunOpt = ui.option(
    bool, "--dry-run", help="Only list what --apply would write (implies --apply)."
)
UnapplyOpt = ui.option(
    bool,
    "--unapply",
    help="Take back the keyword --apply wrote into the sidecars of PHOTO... (only that), and "
    "mark them as not of the class.",
)
SuggestTopOpt = ui.option(int | None, "--top", metavar="K", help="Only the K best.", min=1)
SuggestMinProbOpt = ui.option(
    float | None,
    "--min-prob",
    metavar="P",
    help="Those at or above this probability (default: the class's cut-off, a logit lower for "
    "photos no exclusive sibling ranks higher).",
    min=0,
    max=1,
)


def learn_from_filing(
    lib: Library,
    keywords: bool,
    folders: Path | None,
    min_photos: int,
    only: str | None,
    parents: bool,
    as_json: bool,
) -> None:
    """What ``finder learn --from-keywords`` / ``--from-folders`` does and prints."""
    if keywords and folders is not None:
        raise UsageError("choose one of --from-keywords and --from-folders")
    if keywords:
        report = lib.learn_from_keywords(min_photos=min_photos, only=only, parents=parents)
    else:
        assert folders is not None
        report = lib.learn_from_folders(
            str(folders), min_photos=min_photos, only=only, parents=parents
        )
    ui.print_messages(lib)
    rows: list[dict[str, Any]] = []
    for action, names in (
        ("learned", report.learned),
        ("refreshed", report.refreshed),
        ("unchanged", report.unchanged),
    ):
        for name in names:
            rows.append({**text.class_json(lib.class_record(name)), "action": action})
    rows.sort(key=lambda r: r["name"])
    if as_json:
        ui.echo_json({"classes": rows, "forgotten": report.forgotten})
        return
    for r in rows:
        typer.echo(
            f"{r['action']:<10} {text.escape(r['name'])!r}: {r['examples']} examples, "
            f"{r['negatives']} counter-examples, cut-off {r['threshold']:.2f}"
        )
    for name in report.forgotten:
        typer.echo(f"forgot     {text.escape(name)!r}: its keyword or folder holds no photo")
    for name in report.taken_over:
        ui.say(f"{text.escape(name)!r} was taught before: its marks are kept beside the filing")
    if not rows and not report.forgotten:
        ui.say("no keyword or folder holds enough photos (see --min)")


def suggest(
    name: SuggestNameArg = None,
    photos: PhotosArg = None,
    apply: ApplyOpt = False,
    dry_run: SuggestDryRunOpt = False,
    unapply: UnapplyOpt = False,
    top: SuggestTopOpt = None,
    min_prob: SuggestMinProbOpt = None,
    sort: out.SortOpt = "score",
    copy: out.CopyOpt = None,
    link: out.LinkOpt = None,
    hardlink: out.HardlinkOpt = None,
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
    """The photos not filed under class NAME (made by learn --from-keywords or --from-folders)
    that finder believes belong to it, best first; as find prints them (the same filters and
    --copy/--link). --apply files them under its keyword; no NAME: every filed class with its
    count of suggestions."""
    filters = out.filters_from(after, before, camera, under, near, within)
    out.check_output(as_json, print0)
    if name is None:
        if photos or apply or dry_run or unapply:
            raise UsageError("name the class whose suggestions to apply or take back")
        with ui.open_library(library) as lib:
            counts = lib.suggestion_counts()
            ui.print_messages(lib)
        if as_json:
            ui.echo_json([{"name": n, "source": s, "suggestions": c} for n, s, c in counts])
        else:
            for n, s, c in counts:
                typer.echo(f"{c:>6}  {text.escape(n)}  ({s})")
        return
    if unapply:
        if not photos:
            raise UsageError("--unapply takes the photos to take the keyword back from")
        if apply or dry_run:
            raise UsageError("choose one of --apply and --unapply")
        with ui.open_library(library) as lib:
            done, errors = lib.unapply_suggestions(name, [str(p) for p in photos])
        if as_json:
            ui.echo_json([{"photo": p, "action": "taken back"} for p in done])
        else:
            for p in done:
                typer.echo(b"taken back   " + text.path_bytes(p))
        for line in errors:
            ui.say(f"error: {text.escape(line)}")
        if errors:
            raise typer.Exit(1)
        return
    if photos:
        raise UsageError("photos are given with --unapply only")
    export_to = out.export_choice(copy, link, hardlink)
    with ui.open_library(library) as lib:
        matches = lib.suggest(name, top=top, min_prob=min_prob, filters=filters, sort=sort)
        ui.print_messages(lib)
        if apply or dry_run:
            done, errors = lib.apply_suggestions(name, [m.path for m in matches], dry_run=dry_run)
            out.tag_report(done, errors, dry_run=dry_run, as_json=as_json)
            if errors:
                raise typer.Exit(1)
            return
    out.export_matches(matches, export_to)
    out.print_matches(matches, "probability", as_json=as_json, print0=print0, dates=sort == "date")
