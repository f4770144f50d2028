"""Teaching by the strip on the page (``static/strip.js``) and in the API (issue 23).

* ``GET /strip/{name}?n=20``: the strip of ``n`` photos class ``name`` wants a verdict on, each
  pre-set to finder's guess (the class page fetches it after it is shown);
* ``POST /strip/{name}?n=20&limit=L`` with ``{"add": [ids], "not": [ids], "skip": [ids]}`` (a
  strip confirmed; ``skip``: "not sure", never offered again) or ``{"undo": [ids], "unskip":
  [ids]}`` (a strip taken back): taught at once, one retraining, and
  the class page as it now is, the next strip and the estimate in it;
* ``GET /api/strip/{name}?n=20``: the strip as JSON, ``{"name", "strip", "photos": [...]}``,
  each photo as ``/api/find`` gives it with ``guess``, ``random`` and ``chance``;
* ``POST /api/strip/{name}`` (the body as ``POST /strip``'s): ``{"class", "estimate",
  "next"}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from finder.show.text import class_json
from finder.show.web.site import (
    JSON,
    LEARN_FIELDS,
    Site,
    int_param,
    learn_body,
    match_json,
    paging,
)

STRIP = 20  # photos in a strip, by default
STRIP_FIELDS = (*LEARN_FIELDS, "skip", "unskip")  # a strip's body: "not sure" too
MAX_STRIP = 200


def strip_json(strip: Any) -> dict[str, Any]:
    """A strip as the API gives it."""
    photos = [
        match_json(m, "probability") | {"guess": m.guess, "random": m.random, "chance": m.chance}
        for m in strip.photos
    ]
    return {"name": strip.name, "strip": strip.number, "photos": photos}


def add(site: Site) -> None:
    """The strips' routes, added to ``site``."""
    backend, page, route = site.backend, site.page, site.route
    run = backend.run

    def size(request: Request) -> int:
        n = int_param(request, "n", STRIP, 1, MAX_STRIP)
        assert n is not None
        return n

    @route("/strip/{name:path}")
    async def strip_page(request: Request) -> Response:
        view = await run(backend.strip_view, request.path_params["name"], size(request))
        return page("strip.html", **view)

    @route("/strip/{name:path}", "POST")
    async def strip_teach(request: Request) -> Response:
        """A strip confirmed or taken back, answered with the class page as it now is."""
        body = await learn_body(request, STRIP_FIELDS)
        _, limit = paging(request)
        name = request.path_params["name"]
        view = await run(backend.teach_strip, name, body, limit, size(request))
        return page("class.html", limit=limit, **view)

    @route("/api/strip/{name:path}")
    async def api_strip(request: Request) -> Response:
        found = await run(backend.lib.strip, request.path_params["name"], size(request))
        return JSON(strip_json(found))

    @route("/api/strip/{name:path}", "POST")
    async def api_strip_teach(request: Request) -> Response:
        body = await learn_body(request, STRIP_FIELDS)
        name, n = request.path_params["name"], size(request)

        def teach() -> dict[str, Any]:
            lib = backend.lib
            stored = backend.strip_taught(name, body)
            return {
                "class": class_json(lib.class_record(stored)),
                "estimate": lib.estimate(stored),
                "next": strip_json(lib.strip(stored, n)),
            }

        return JSON(await run(teach))
