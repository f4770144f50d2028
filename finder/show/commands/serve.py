"""``finder serve``: the local web page."""

from __future__ import annotations

from finder.show import app as ui

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


def serve(
    library: ui.LibraryOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8765,
    no_open: NoOpenOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Serve the library as a local web page: classes as grids of thumbnails, a click to
    teach them, photos like a photo. Prints the URL (with its access token) first."""
    from finder.show.web.server import serve as run

    run(library, host=host, port=port, open_browser=not no_open, allow_hosts=allow_host or ())
