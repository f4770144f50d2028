"""The HTML pages of ``finder serve`` (Jinja2 templates, a little plain JavaScript in
``static/``) and their static files.

* ``/``: the library at a glance, the progress of an index run, the classes, every photo.
* ``/class/{name}``: the class's ranking as a grid, best first, with the cut-off drawn in it;
  ✓ / ✗ / undo on each photo retrain the class and the grid re-ranks: one ``POST
  /class/{name}`` (the body as ``/api/learn``'s) answers with the page as it now is, its photos
  to review included, and the page swaps in its parts.
* ``/view/{id}``: one photo, its path, its probability in each class, the photos most like it;
  ✓ / ✗ / undo of a class there is one ``POST /view/{id}?class=NAME``.
* ``/review/{name}``: the photos finder most wants a verdict on (``Library.review``); the class
  page fetches it after it is shown.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from finder.show.web.site import (
    MAX_PAGE,
    REVIEW,
    BadRequest,
    Site,
    image_id,
    int_param,
    learn_body,
    paging,
)

STATIC = Path(__file__).parent / "static"


def add(site: Site) -> None:
    """The pages' routes, added to ``site``."""
    backend, page, route = site.backend, site.page, site.route
    run = backend.run

    @route("/")
    async def home(request: Request) -> Response:
        offset, limit = paging(request)
        view = await run(backend.home, offset, limit)
        return page("home.html", offset=offset, limit=limit, **view)

    @route("/class/{name:path}")
    async def class_page(request: Request) -> Response:
        offset, limit = paging(request)
        view = await run(backend.class_view, request.path_params["name"], offset, limit)
        return page("class.html", limit=limit, **view)

    @route("/class/{name:path}", "POST")
    async def class_teach(request: Request) -> Response:
        """A ✓, ✗ or undo on the class page (the body as ``/api/learn``'s): the class is
        taught, and the page answers as it now is, its photos to review included."""
        body = await learn_body(request)
        _, limit = paging(request)
        name = request.path_params["name"]
        view = await run(backend.teach_class, name, body, limit, REVIEW)
        return page("class.html", limit=limit, **view)

    @route("/review/{name:path}")
    async def review_page(request: Request) -> Response:
        n = int_param(request, "n", REVIEW, 1, MAX_PAGE)
        view = await run(backend.review_view, request.path_params["name"], n)
        return page("review.html", **view)

    @route("/view/{id}")
    async def photo_page(request: Request) -> Response:
        offset, limit = paging(request)
        view = await run(backend.photo_view, image_id(request), offset, limit)
        return page("photo.html", offset=offset, limit=limit, **view)

    @route("/view/{id}", "POST")
    async def photo_teach(request: Request) -> Response:
        """A ✓, ✗ or undo of the class ``?class=NAME`` on a photo's page (the body as
        ``/api/learn``'s), answered with the page as it now is."""
        body = await learn_body(request)
        name = request.query_params.get("class")
        if not name:
            raise BadRequest("class is missing: name the class to teach (?class=NAME)")
        _, limit = paging(request)
        view = await run(backend.teach_photo, image_id(request), name, body, limit)
        return page("photo.html", offset=0, limit=limit, **view)

    @route("/static/{file}")
    async def static(request: Request) -> Response:
        name = request.path_params["file"]
        files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        if name not in files:
            raise HTTPException(404)
        return FileResponse(files[name], headers={"cache-control": "private, max-age=300"})
