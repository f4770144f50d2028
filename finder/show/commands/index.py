"""``finder index``, ``status``, ``check``, ``repair``, ``backbones``: the library itself."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from finder.embed.cluster_ray import LOCAL, looks_like_address
from finder.errors import LibraryLocked, UsageError
from finder.show import app as ui
from finder.show import text
from finder.show.progress import ProgressView

RootsArg = ui.argument(
    list[Path] | None, "ROOT...", "Folders (or files) to index.", show_default=False
)
HiddenOpt = ui.option(bool, "--hidden", help="Also index hidden files.")
ExcludeOpt = ui.option(
    list[str] | None, "--exclude", metavar="GLOB", help="Skip paths matching GLOB (repeatable)."
)
BatchSizeOpt = ui.option(
    int | None, "--batch-size", metavar="N", help="Images per model call.", min=1
)
WorkersOpt = ui.option(int | None, "--workers", metavar="N", help="Decoding threads.", min=1)
MemoryBudgetOpt = ui.option(
    str | None,
    "--memory-budget",
    metavar="SIZE",
    help="Memory for the search index, e.g. 2GB (remembered).",
)
NoVideosOpt = ui.option(
    bool,
    "--no-videos",
    help="Leave videos out (as --exclude would: those indexed before under ROOTS are dropped).",
)
ThumbnailsOpt = ui.option(
    bool, "--thumbnails", help="Also make the thumbnails of the page (`finder serve`) now."
)
RayOpt = ui.option(
    str | None,
    "--ray",
    metavar="[ADDRESS]",
    help="Embed on a Ray cluster: alone, one started here for the run; 'auto', the "
    "one `ray start` made; or HOST:PORT. The folders must be at the same path on every "
    "node. Needs pip install 'finder[ray]'.",
)

WatchOpt = ui.option(
    bool,
    "--watch",
    help="After the pass, keep running and follow the roots: new, changed, moved and "
    "deleted photos are taken in within seconds. Ctrl-C stops.",
)
PollOpt = ui.option(
    float | None,
    "--poll",
    metavar="SECONDS",
    help="With --watch: rescan the roots every SECONDS instead of waiting for the system's "
    "events (for network mounts, where there are none).",
    min=0.001,
)
ForgetRootOpt = ui.option(
    list[Path] | None,
    "--forget-root",
    metavar="ROOT",
    help="Drop the photos of ROOT, a root gone for good (an offline disk's photos are "
    "otherwise kept). Repeatable; no other ROOT needed.",
    show_default=False,
)


class IndexCommand(ui.Command):
    """``finder index``: ``--ray`` alone (last, or before an option or a folder) means a
    cluster of this machine, for the run."""

    optional_values = {"ray": ui.OptionalValue(LOCAL, looks_like_address)}


def index(
    roots: RootsArg = None,
    library: ui.LibraryOpt = None,
    backbone: ui.BackboneOpt = None,
    model: ui.ModelOpt = None,
    layer: ui.LayerOpt = None,
    weights: ui.WeightsOpt = None,
    hidden: HiddenOpt = False,
    exclude: ExcludeOpt = None,
    quiet: ui.QuietOpt = False,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = None,
    memory_budget: MemoryBudgetOpt = None,
    views: ui.ViewsOpt = None,
    precision: ui.PrecisionOpt = None,
    thumbnails: ThumbnailsOpt = False,
    ray: RayOpt = None,
    no_videos: NoVideosOpt = False,
    watch: WatchOpt = False,
    poll: PollOpt = None,
    forget_root: ForgetRootOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Index photos and videos under ROOTS: new files are embedded, changed ones re-embedded,
    deleted ones dropped, moved ones keep their vectors. A root indexed before that is offline
    now (a disk not mounted) keeps its photos."""
    if poll is not None and not watch:
        raise UsageError("--poll goes with --watch (it says how often to rescan)")
    if watch and ray is not None:
        raise UsageError("--watch embeds here; it cannot be combined with --ray")
    if watch and not roots:
        raise UsageError("--watch: name the folders to follow")
    choice = ui.backbone_choice(backbone, model, layer, weights, views, precision)
    view = ProgressView(quiet or as_json)
    try:
        with ui.open_library(
            library,
            backbone=choice,
            batch_size=batch_size,
            workers=workers,
            memory_budget=_parse_bytes(memory_budget) if memory_budget else None,
        ) as lib:
            for root in forget_root or []:
                n = lib.forget_root(str(root))
                ui.say(f"forgot {root}: {n} photos dropped")
            if not roots:
                if forget_root:
                    return
                raise UsageError("name at least one folder to index")
            if watch:
                paths = [str(r) for r in roots]
                return _watch(lib, paths, view, hidden, exclude, thumbnails, poll, as_json)
            try:
                summary = lib.index(
                    [str(r) for r in roots],
                    hidden=hidden,
                    exclude=exclude or [],
                    progress=view,
                    thumbnails=thumbnails,
                    ray=ray,
                    videos=not no_videos,
                )
            finally:
                view.stop()
    except LibraryLocked as e:
        _locked(e, [] if forget_root else roots or [])
    for m in summary.messages:
        ui.say(m)
    _print_summary(summary, as_json)
    if summary.interrupted:
        raise typer.Exit(130)


def _locked(error: LibraryLocked, roots: list[Path]) -> None:
    """Another process writes the library. When it is a watch that follows every root asked
    for, there is nothing to do (exit 0); when it is a watch, say how to add the others."""
    owner = error.owner
    if not (owner and owner.get("following")):
        raise error
    paths = [os.path.abspath(os.path.expanduser(str(r))) for r in roots]
    if text.followed_by(owner, paths):
        ui.say(text.nothing_to_do_line(owner, paths))
        raise typer.Exit(0)
    ui.say(f"error: {text.locked_line(owner, paths)}")
    raise typer.Exit(error.exit_code)


def _print_summary(summary: Any, as_json: bool, lines: bool = False) -> None:
    if as_json and lines:  # --watch --json: one object per line
        typer.echo(json.dumps(summary.to_dict()))
    elif as_json:
        ui.echo_json(summary.to_dict())
    else:
        typer.echo(text.index_summary_line(summary))


def _watch(
    lib: Any,
    roots: list[str],
    view: ProgressView,
    hidden: bool,
    exclude: list[str] | None,
    thumbnails: bool,
    poll: float | None,
    as_json: bool,
) -> None:
    """``index --watch``: the pass's summary, then a line (or a JSON object) per batch of
    changes, until Ctrl-C or SIGTERM (both stop it cleanly: exit code 0)."""
    from finder.library import WatchOptions

    def on_index(summary: Any) -> None:
        view.stop()
        for m in summary.messages:
            ui.say(m)
        _print_summary(summary, as_json, lines=True)
        sys.stdout.flush()
        ui.say(f"watching {', '.join(roots)} (Ctrl-C stops)")

    def on_batch(batch: Any) -> None:
        view.stop()
        view.started = None  # each batch's rate its own
        if as_json:
            typer.echo(json.dumps(batch.to_dict()))
        else:
            typer.echo(text.batch_line(batch))
        sys.stdout.flush()

    options = WatchOptions(hidden=hidden, exclude=exclude or [], poll=poll, thumbnails=thumbnails)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        lib.watch(roots, options, progress=view, on_index=on_index, on_batch=on_batch, say=ui.say)
    finally:
        signal.signal(signal.SIGTERM, previous)
        view.stop()


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _parse_bytes(text: str) -> int:

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


FailedOpt = ui.option(bool, "--failed", help="List the files that failed.")


def status(
    library: ui.LibraryOpt = None, failed: FailedOpt = False, as_json: ui.JsonOpt = False
) -> None:
    """Show what the library holds: counts, backbone, classes, search index, failures."""
    with ui.open_library(library) as lib:
        info = lib.status()
        failures = lib.failures() if failed else []
    if as_json:
        if failed:
            info["failures"] = [{"path": p, "reason": r} for p, r in failures]
        ui.echo_json(info)
        return
    ui.echo_lines(text.failure_lines(failures) if failed else text.status_lines(info))


def check(library: ui.LibraryOpt = None, as_json: ui.JsonOpt = False) -> None:
    """Check the library's files: the catalog (SQLite's integrity check and its records),
    vectors against the catalog, learned classes against the backbone. One line per problem;
    exit code 3 when there is any (then run `finder repair`)."""
    with ui.open_library(library) as lib:
        problems = lib.check()
    if as_json:
        ui.echo_json({"ok": not problems, "problems": [vars(p) for p in problems]})
    elif problems:
        for p in problems:
            typer.echo(text.escape(str(p)))
    else:
        typer.echo("no problems found")
    if problems:
        raise typer.Exit(3)


def repair(library: ui.LibraryOpt = None, as_json: ui.JsonOpt = False) -> None:
    """Repair a damaged library: restore the catalog from its newest good backup plus what can
    still be read, and reconcile it with the vectors; the next `finder index` re-embeds only
    what was lost."""
    with ui.open_library(library) as lib:
        report = lib.repair()
        ui.print_messages(lib)
    if as_json:
        ui.echo_json(report.to_dict())
        return
    if report.problems:
        typer.echo(f"catalog damaged: {report.problems[0]}")
        source = report.restored or "no backup (none was good)"
        salvaged = ", ".join(f"{n} {table}" for table, n in report.salvaged.items())
        typer.echo(f"restored from {source}; read back from the damaged catalog: {salvaged}")
        if report.damaged_copy:
            typer.echo(f"the damaged catalog is kept as {report.damaged_copy}")
    else:
        typer.echo("catalog: no damage")
    if report.vectors_reset:
        typer.echo(f"vector store unreadable: kept as {report.vectors_reset}, started anew")
    for line in text.repair_lines(report):
        typer.echo(text.escape(line))
    typer.echo(
        f"vectors: {report.vectors_dropped} dropped; {report.to_embed} images to embed "
        "(run `finder index` on your folders)"
    )


def backbones(as_json: ui.JsonOpt = False) -> None:
    """List the backbones a new library can be indexed with."""
    from finder.embed.registry import BACKBONES, DEFAULT_BACKBONE

    rows = text.backbone_rows(BACKBONES.values(), DEFAULT_BACKBONE)
    if as_json:
        ui.echo_json(rows)
    else:
        ui.echo_lines(text.backbone_lines(rows))
