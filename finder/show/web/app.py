"""``finder serve``'s web app, assembled: server-rendered pages and their JSON twins, over
``Library``. Each module of routes adds its own to one :class:`~finder.show.web.site.Site`:

* ``pages.py``: ``/``, ``/class/{name}``, ``/view/{id}``, ``/review/{name}``, ``/static/``;
* ``api.py``: the JSON API (``/api/...``, a contract: scripts use it too);
* ``live.py``: the page's live updates (``/api/changes``, ``/live/cards``);
* ``media.py``: images and videos by catalog id only (``/thumb/``, ``/photo/``, ``/video/``);
* ``filing_routes.py``: the Suggestions view (``/suggest``, ``/api/suggest``, ``/api/file``:
  issue 25), given the site's helpers (``add_filing``);
* ``strips.py``: teaching by the strip (``/strip/{name}``, ``/api/strip/{name}``).

Errors are one line: ``{"error": "..."}`` with a 4xx status (an HTML page for the pages), and
the library is left as it was. ``guard.py`` checks the Host, the token and the origin first.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from finder.library import format_time
from finder.show.web import api, live, media, pages, strips
from finder.show.web.backend import Backend, mark_key
from finder.show.web.filing_routes import add_routes as add_filing_routes
from finder.show.web.guard import Guard
from finder.show.web.site import (
    JSON,
    REVIEW,
    Handler,
    Site,
    int_param,
    learn_body,
    match_json,
    object_body,
    shown,
    status_of,
)

__all__ = ["REVIEW", "create_app"]

HERE = Path(__file__).parent
NAV_INLINE = 6  # classes named in the top bar; past that, a menu with a search box
CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The modules of routes, in the order their routes are matched.
ROUTES = (pages, api, live, media, strips)


def add_filing(site: Site) -> None:
    """The Suggestions view's routes (``filing_routes.add_routes``), added to ``site`` with its
    helpers."""
    add_filing_routes(
        site.route,
        site.backend.run,
        site.page,
        site.backend.lib,
        learn_body=learn_body,
        object_body=object_body,
        int_param=int_param,
        json=JSON,
        match_json=match_json,
    )


def create_app(
    library: str | os.PathLike | None,
    *,
    token: str,
    port: int,
    host: str = "127.0.0.1",
    allow_hosts: Iterable[str] = (),
) -> Guard:
    """The ASGI app, guarded: serve it with uvicorn (``finder.show.web.server.serve``);
    ``allow_hosts``: more names its ``Host`` may give (``guard.Guard``)."""
    backend = Backend(library)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shown"] = shown
    env.filters["q"] = lambda text: quote(str(text), safe="")
    env.filters["name"] = lambda path: shown(os.path.basename(path))
    env.filters["key"] = mark_key
    env.filters["day"] = lambda seconds: time.strftime("%Y-%m-%d", time.localtime(seconds))
    env.filters["clock"] = format_time
    env.globals["has_review"] = hasattr(backend.lib, "review")
    env.globals["nav_inline"] = NAV_INLINE

    def page(template: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(library=shown(str(backend.lib.dir)), **context)
        return HTMLResponse(html, code, headers={"content-security-policy": CSP})

    site = Site(backend, page)
    for module in ROUTES:
        module.add(site)
    add_filing(site)

    def error(request: Request, status: int, message: str) -> Response:
        path = request.url.path
        if path.startswith(("/api/", "/thumb/", "/photo/", "/video/", "/static/")):
            return JSON({"error": message}, status)
        try:
            return page("error.html", status, status=status, message=message)
        except Exception:  # an error page must never fail: the one line as JSON, then
            return JSON({"error": message}, status)

    def answer(fn: Handler) -> Callable:
        """``fn``, its failures turned into one-line errors (never a traceback)."""

        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except HTTPException:
                raise
            except Exception as exc:
                status, text = status_of(exc)
                if status >= 500:
                    print(f"finder serve: error: {type(exc).__name__}: {exc}", file=sys.stderr)
                return error(request, status, text)

        return endpoint

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = "not found" if exc.status_code == 404 else str(exc.detail).lower()
        return error(request, exc.status_code, text)

    routes = [Route(path, answer(fn), methods=methods) for path, fn, methods in site.handlers]

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        yield
        backend.close()

    app = Starlette(
        routes=routes, exception_handlers={HTTPException: on_http_error}, lifespan=lifespan
    )
    app.state.backend = backend
    return Guard(app, token=token, port=port, host=host, allow_hosts=allow_hosts)
