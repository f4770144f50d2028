"""What ``find``, ``similar`` and ``tag`` share on the command line: the filter, sort and export
options, and how matches are printed (text, JSON, NUL-separated) or exported."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finder.errors import UsageError
from finder.show import app as ui
from finder.show import text
from finder.show.progress import say

if TYPE_CHECKING:
    from finder.library import Filters, Match


def _option(kind: Any, flag: str, metavar: str, help: str) -> Any:
    """An option taking a value, shown as ``FLAG METAVAR`` without a default."""
    return ui.option(kind, flag, metavar=metavar, help=help, show_default=False)


AfterOpt: Any = _option(
    str | None,
    "--after",
    "DATE",
    "Only photos taken on or after DATE: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM, the "
    "photo's local time (EXIF date, else the file's date).",
)
BeforeOpt: Any = _option(
    str | None,
    "--before",
    "DATE",
    "Only photos taken before DATE (before the start of that year, month or day).",
)
CameraOpt: Any = _option(
    str | None,
    "--camera",
    "TEXT",
    "Only photos from a camera whose make or model contains TEXT (any case).",
)
UnderOpt: Any = _option(
    Path | None, "--under", "PATH", "Only photos in the folder PATH or its sub-folders."
)
NearOpt: Any = _option(
    str | None,
    "--near",
    "LAT,LON",
    "Only photos with a GPS position within --within km of LAT,LON (decimal degrees, south "
    "and west negative, e.g. -33.86,151.21).",
)
WithinOpt: Any = _option(
    float | None, "--within", "KM", "The distance for --near, in km (default 10)."
)
SortOpt = ui.option(
    str,
    "--sort",
    metavar="score|date",
    help="Order by score (best first) or by date taken (oldest first, undated last).",
)
Print0Opt = ui.option(
    bool, "--print0", help="Print only the paths, each followed by a NUL byte (for xargs -0)."
)
CopyOpt: Any = _option(
    Path | None,
    "--copy",
    "DIR",
    "Also copy the photos into DIR (created if missing), keeping their names; a taken name "
    "gets -1, -2, ...: nothing is overwritten.",
)
LinkOpt: Any = _option(
    Path | None,
    "--link",
    "DIR",
    "Like --copy, with symbolic links to the photos instead of copies.",
)
HardlinkOpt: Any = _option(
    Path | None,
    "--hardlink",
    "DIR",
    "Like --copy, with hard links (DIR on the same file system as the photos).",
)


def filters_from(
    after: str | None,
    before: str | None,
    camera: str | None,
    under: Path | None,
    near: str | None,
    within: float | None,
) -> Filters | None:
    """The filters of the filter options (``AfterOpt`` ... ``WithinOpt``, which ``find``,
    ``similar`` and ``tag`` declare before their ``--library``), or None when none is given;
    checked: a bad value is a one-line error."""
    from finder.library import Filters

    filters = Filters(
        after=after,
        before=before,
        camera=camera,
        under=str(under) if under is not None else None,
        near=near,
        within_km=within,
    )
    return filters if filters.active else None


def check_output(as_json: bool, print0: bool) -> None:
    if as_json and print0:
        raise UsageError("--json and --print0 do not go together: choose one")


def export_choice(
    copy: Path | None, link: Path | None, hardlink: Path | None
) -> tuple[str, Path] | None:
    """(mode, folder) of the one export option given, if any."""
    given = [(m, d) for m, d in (("copy", copy), ("link", link), ("hardlink", hardlink)) if d]
    if len(given) > 1:
        raise UsageError("choose one of --copy, --link and --hardlink")
    if given:
        from finder.act.export import check_folder

        mode, folder = given[0]
        if os.path.exists(folder) and not os.path.isdir(folder):  # before any search
            check_folder(folder)
        return mode, folder
    return None


def print_matches(
    matches: list[Match], key: str, *, as_json: bool, print0: bool, dates: bool
) -> None:
    """Matches as JSON (``path``, ``key``, ``taken``), NUL-ended paths, or lines of score and
    path (with the date taken when ``dates``)."""
    if as_json:
        ui.echo_json([match_json(m, key) for m in matches])
        return
    if print0:
        out = typer.get_binary_stream("stdout")
        for m in matches:
            out.write(os.fsencode(m.path) + b"\0")
        out.flush()
        return
    if not dates:
        lines = text.match_lines(matches)
    else:
        lines = [
            f"{m.score:.3f}  {m.taken or '-':<25}  ".encode() + text.shown_match(m) for m in matches
        ]
    for line in lines:
        typer.echo(line)


def match_json(m: Match, key: str) -> dict[str, Any]:
    """A match as ``--json`` gives it: ``path``, the score under ``key``, ``taken``, ``kind``
    ("photo" or "video"); a video's also ``time`` (seconds: its best moment) and ``moments``
    (its other frames in the answer, each ``time`` and score); a strip's photo also ``guess``
    (finder's verdict: above the cut), ``random`` (drawn at random) and ``chance`` (a random
    draw's chance of being drawn, else null)."""
    row: dict[str, Any] = {"path": m.path, key: m.score, "taken": m.taken, "kind": m.kind}
    if m.kind == "video":
        row["time"] = m.time
        row["moments"] = [{"time": t, key: s} for _, t, s in m.moments]
    if m.guess is not None:  # a strip's photo (find --review)
        row |= {"guess": m.guess, "random": m.random, "chance": m.chance}
    return row


def export_matches(matches: list[Match], choice: tuple[str, Path] | None) -> None:
    """Export the matches as chosen, then say on stderr what was done."""
    if choice is None:
        return
    from finder.act.export import NEW, RENAMED, SAME, export

    mode, folder = choice
    done = export([m.path for m in matches], folder, mode)
    count = {s: sum(1 for d in done if d.status == s) for s in (NEW, RENAMED, SAME)}
    verb = {"copy": "copied", "link": "linked", "hardlink": "hard-linked"}[mode]
    extra = []
    if count[RENAMED]:
        extra.append(f"{count[RENAMED]} under a new name (the name was taken)")
    if count[SAME]:
        extra.append(f"{count[SAME]} already there")
    more = f" ({', '.join(extra)})" if extra else ""
    typer.echo(f"finder: {verb} {count[NEW] + count[RENAMED]} photos into {folder}{more}", err=True)


def tag_report(done: list[Any], errors: list[str], *, dry_run: bool, as_json: bool) -> None:
    """What ``finder tag`` did (or would do) to each sidecar."""
    from finder.act.xmp import ADD, CREATE, HAS

    if as_json:
        ui.echo_json([{"photo": t.photo, "sidecar": t.sidecar, "action": t.action} for t in done])
    else:
        if dry_run:
            words = {CREATE: "would create", ADD: "would add", HAS: "has it"}
        else:
            words = {CREATE: "created", ADD: "added", HAS: "has it"}
        for t in done:
            typer.echo(f"{words[t.action]:<12} ".encode() + text.path_bytes(t.sidecar))
    for line in errors:
        say(f"error: {text.escape(line)}")


def say_if_empty(
    lib: Any,
    matches: list[Match],
    name: str | None,
    as_json: bool,
    top: int | None,
    min_prob: float | None,
    filters: Filters | None,
    review: int | None = None,
    *,
    before: str = "",
) -> None:
    """Why an answer in text is empty, on stderr, and what would show photos (``find NAME``,
    ``similar`` when ``name`` is None, ``tag`` with ``before``); JSON's ``[]`` says it alone."""
    if matches or as_json:
        return
    threshold = None
    if name is not None and review is None and min_prob is None:
        threshold = lib.class_record(name)["threshold"]
    empty = text.empty_answer(
        name,
        threshold=threshold,
        min_prob=min_prob,
        top=top,
        filtered=filters is not None,
        review=review is not None,
    )
    say(before + empty)
