"""``finder dupes``: identical files and near-duplicates, the one to keep first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finder.show import text
from finder.show.app import (
    JsonOpt,
    LibraryOpt,
    command,
    echo_json,
    echo_lines,
    handle_errors,
    open_library,
    print_messages,
)


@command()
@handle_errors
def dupes(
    under: Annotated[
        Path | None,
        typer.Option("--under", metavar="PATH", help="Only the photos in this folder."),
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print groups of duplicate photos: identical files, and near-duplicates (the same shot
    resized, re-encoded, lightly cropped or edited), the one to keep first. Deletes nothing."""
    with open_library(library) as lib:
        groups = lib.dupes(str(under) if under is not None else None)
        print_messages(lib)
    if as_json:
        echo_json(
            {
                "groups": [g.to_dict() for g in groups],
                "spare_files": sum(len(g.files) - 1 for g in groups),
                "spare_bytes": sum(f.bytes for g in groups for f in g.files[1:]),
            }
        )
        return
    echo_lines(text.dupe_lines(groups))
