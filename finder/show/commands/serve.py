"""``finder serve``: the local web page."""

from __future__ import annotations

from typing import Annotated

import typer

from finder.show import app as ui


@ui.command()
@ui.handle_errors
def serve(
    library: ui.LibraryOpt = None,
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
