"""``finder dupes``: identical files and near-duplicates, the one to keep first."""

from __future__ import annotations

from pathlib import Path

from finder.show import app as ui
from finder.show import text

UnderOpt = ui.option(
    Path | None,
    "--under",
    metavar="PATH",
    help="Only the groups with a photo in this folder (each shown whole).",
)


def dupes(
    under: UnderOpt = None,
    library: ui.LibraryOpt = None,
    as_json: ui.JsonOpt = False,
) -> None:
    """Print groups of duplicate photos: identical files, and near-duplicates (the same shot
    resized, re-encoded, lightly cropped or edited), the one to keep first. Deletes nothing."""
    with ui.open_library(library) as lib:
        groups = lib.dupes(str(under) if under is not None else None)
        ui.print_messages(lib)
    if as_json:
        ui.echo_json(
            {
                "groups": [g.to_dict() for g in groups],
                "spare_files": sum(len(g.files) - 1 for g in groups),
                "spare_bytes": sum(f.bytes for g in groups for f in g.files[1:]),
            }
        )
        return
    ui.echo_lines(text.dupe_lines(groups))
