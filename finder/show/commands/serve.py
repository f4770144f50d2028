"""``finder serve``: the local web page."""

from __future__ import annotations

import typer

from finder.errors import LibraryLocked
from finder.show import app as ui
from finder.show import text

HostOpt = ui.option(
    str, "--host", metavar="ADDRESS", help="Address to listen on (loopback unless you mean it)."
)
PortOpt = ui.option(
    int, "--port", metavar="N", help="Port to listen on (0: any free one).", min=0, max=65535
)
NoOpenOpt = ui.option(bool, "--no-open", help="Do not open a browser; just print the URL.")
AllowHostOpt = ui.option(
    list[str] | None,
    "--allow-host",
    metavar="NAME",
    help="Also answer requests that name this server NAME (a DNS name or alias of this "
    "machine; repeatable). Its own names and addresses are always let in.",
)
WatchOpt = ui.option(
    bool,
    "--watch",
    help="Also follow the folders this library has indexed, as finder index --watch does: "
    "new photos appear on the page as they come. This process is then the library's one "
    "writer. Ctrl-C stops both.",
)


def serve(
    library: ui.LibraryOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8765,
    no_open: NoOpenOpt = False,
    allow_host: AllowHostOpt = None,
    watch: WatchOpt = False,
) -> None:
    """Serve the library as a local web page: classes as grids of thumbnails, a click to
    teach them, photos like a photo. Prints the URL (with its access token) first."""
    from finder.show.web.server import serve as run

    try:
        run(
            library,
            host=host,
            port=port,
            open_browser=not no_open,
            watch=watch,
            allow_hosts=allow_host or (),
        )
    except LibraryLocked as e:
        if not (e.owner and e.owner.get("following")):
            raise
        ui.say(f"error: {text.serve_locked_line(e.owner)}")
        raise typer.Exit(e.exit_code) from None
