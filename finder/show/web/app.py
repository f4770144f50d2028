"""``finder serve``'s web app: server-rendered pages and their JSON twins, over ``Library``.

Pages (HTML, Jinja2 templates, a little plain JavaScript in ``static/``):

* ``/``: the library at a glance, the progress of an index run, the classes, every photo.
* ``/class/{name}``: the class's ranking as a grid, best first, with the cut-off drawn in it;
  ✓ / ✗ / undo on each photo retrain the class and the grid re-ranks: one ``POST
  /class/{name}`` (the body as ``/api/learn``'s) answers with the page as it now is, its photos
  to review included, and the page swaps in its parts.
* ``/view/{id}``: one photo, its path, its probability in each class, the photos most like it;
  ✓ / ✗ / undo of a class there is one ``POST /view/{id}?class=NAME``.
* ``/review/{name}``: the photos finder most wants a verdict on (``Library.review``); the class
  page fetches it after it is shown.

The JSON API (a contract: scripts use it too): ``GET /api/status``, ``/api/classes``,
``/api/find/{name}?top=K&min_prob=P``, ``/api/similar/{id}?top=K``, ``/api/progress``,
``/api/examples/{name}``, ``POST /api/learn/{name}`` with ``{"add": [ids], "not": [ids],
"undo": [ids]}``; a class's life: ``POST /api/rename/{name}`` with ``{"to": "new name"}``,
``POST /api/forget/{name}`` (kept 30 days), ``GET /api/forgotten``, ``POST
/api/restore/{name}``, ``POST /api/drop/{name}`` with ``{"ids": [image ids], "marks": [keys]}``
(marks taken back: by image id, or by the ``key`` ``/api/examples`` gives each mark, which
also names a photo outside the library); ``/api/changes?since=STAMP`` (what changed since a
page was shown: the page's live updates, ``static/live.js``); images: ``GET /thumb/{id}``,
``GET /photo/{id}``, by catalog id only.

Errors are one line: ``{"error": "..."}`` with a 4xx status (an HTML page for the pages), and
the library is left as it was. ``guard.py`` checks the Host, the token and the origin first.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from finder.errors import Arg, DecodeError, FinderError, UsageError
from finder.library import format_time
from finder.show import as_json
from finder.show.text import class_json, forgotten_json, path_bytes
from finder.show.web.backend import Backend, mark_key
from finder.show.web.filing_routes import add_routes as add_filing_routes
from finder.show.web.guard import Guard

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGE = 100  # photos per page of a grid
MAX_PAGE = 1000
MAX_BODY = 1 << 20  # bytes of a POST body: 100,000 ids of 7 digits take 0.9 MB
MAX_ID = 2**63 - 1  # image ids are SQLite's 64-bit integers
REVIEW = 8  # photos in the "is this right?" strip
NAV_INLINE = 6  # classes named in the top bar; past that, a menu with a search box
CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_ID = re.compile(r"^[0-9]{1,18}$")
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(UsageError):
    """A request the app cannot take: ``str`` is the one-line reason, naming the request's
    fields (status 400)."""


class TooLarge(BadRequest):
    """A request whose body is past ``MAX_BODY`` (status 413)."""

    http_status = 413


def shown(path: str) -> str:
    """A path as a person should see it: control characters escaped as the terminal shows
    them (``show.text``), undecodable bytes as ``\\xff``."""
    return path_bytes(path).decode("utf-8", "backslashreplace")


class JSON(JSONResponse):
    """JSON whose every string is valid UTF-8, a path that is not also given as its exact
    bytes (``path_bytes``: see ``finder.show.as_json``)."""

    def render(self, content: Any) -> bytes:
        return as_json.dumps(content, separators=(",", ":")).encode()


def match_json(m: Any, key: str) -> dict:
    """A match as the API gives it; a video's also with its moment (``time``, ``frame``: the
    id that names that frame: ``/thumb/FRAME``, ``/view/FRAME``, ✓/✗ by id)."""
    row = {"id": m.id, "path": m.path, key: m.score, "thumb": f"/thumb/{m.key}", "kind": m.kind}
    if m.kind == "video":
        row |= {"time": m.time, "frame": m.frame}
    return row


# -- reading the request ----------------------------------------------------------------------
def image_id(request: Request) -> int:
    return image_id_of(request.path_params["id"])


def image_id_of(text: str) -> int:
    if not _ID.match(text):
        raise BadRequest(f"{shown(text)!r} is not an image id: images are named by id only")
    return int(text)


def parse_stamp(text: str) -> tuple[str, float]:
    """A page's stamp (``KEY:WHEN``, as ``Backend.stamp`` made it)."""
    key, _, when = text.partition(":")
    try:
        value = float(when)
    except ValueError:
        value = float("nan")
    if not key or value != value or value in (float("inf"), float("-inf")):
        raise BadRequest("since must be the stamp of a page (data-stamp)")
    return key, value


def int_param(request: Request, key: str, default: int | None, lo: int, hi: int) -> int | None:
    text = request.query_params.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{key} must be a whole number, not {text!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{key} must be between {lo} and {hi}, not {value}")
    return value


def paging(request: Request) -> tuple[int, int]:
    offset = int_param(request, "offset", 0, 0, 10**9)
    limit = int_param(request, "limit", PAGE, 1, MAX_PAGE)
    assert offset is not None and limit is not None
    return offset, limit


async def read_body(request: Request) -> bytes:
    """The request's body, refused (413) past ``MAX_BODY`` bytes: by its stated length before
    anything is read, else as soon as what came passes it."""
    stated = request.headers.get("content-length", "")
    if stated.isdigit() and int(stated) > MAX_BODY:
        raise TooLarge(f"the body is larger than {MAX_BODY // 1024} KiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge(f"the body is larger than {MAX_BODY // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def learn_body(request: Request) -> dict[str, list[int]]:
    body = await read_body(request)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    except RecursionError:
        raise BadRequest("the body is not JSON that can be read: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object like {"add": [ids], "not": [ids]}')
    unknown = set(data) - {"add", "not", "undo"}
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}: use add, not and undo")
    out: dict[str, list[int]] = {}
    for key in ("add", "not", "undo"):
        ids = data.get(key, [])
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise BadRequest(Arg(key), " must be a list of image ids (whole numbers), not paths")
        wrong = next((i for i in ids if not 0 <= i <= MAX_ID), None)
        if wrong is not None:
            shown_id = str(wrong) if len(str(wrong)) <= 30 else f"{str(wrong)[:20]}..."
            raise BadRequest(Arg(key), f" holds {shown_id}, which is no image id (0 to 2^63-1)")
        out[key] = ids
    if not any(out.values()):
        raise BadRequest("nothing to learn: give add, not or undo image ids")
    return out


async def object_body(request: Request, fields: dict[str, str]) -> dict[str, Any]:
    """The JSON object of a POST body (an empty body is ``{}``) holding only ``fields`` (name
    -> what it must be, as the error says it)."""
    body = await read_body(request)
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    except RecursionError:
        raise BadRequest("the body is not JSON that can be read: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(data) - set(fields)
    if unknown:
        known = ", ".join(fields) or "none"
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}: the fields are {known}")
    return data


def _ids(data: dict[str, Any], key: str) -> list[int]:
    ids = data.get(key, [])
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_ID for i in ids
    ):
        raise BadRequest(Arg(key), " must be a list of image ids (whole numbers), not paths")
    return ids


def _keys(data: dict[str, Any], key: str) -> list[str]:
    keys = data.get(key, [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise BadRequest(Arg(key), " must be a list of mark keys (as /api/examples gives them)")
    return keys


# -- the app ----------------------------------------------------------------------------------
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

    run = backend.run
    handlers: list[tuple[str, Handler, list[str] | None]] = []

    def route(path: str, *methods: str) -> Callable[[Handler], Handler]:
        """Serve the handler below at ``path`` (GET and HEAD, unless ``methods`` are named)."""

        def add(fn: Handler) -> Handler:
            handlers.append((path, fn, list(methods) or None))
            return fn

        return add

    # -- pages -------------------------------------------------------------------------
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

    # -- JSON API ----------------------------------------------------------------------
    @route("/api/status")
    async def api_status(request: Request) -> Response:
        return JSON(await run(backend.lib.status))

    @route("/api/classes")
    async def api_classes(request: Request) -> Response:
        return JSON([class_json(r) for r in await run(backend.lib.classes)])

    @route("/api/progress")
    async def api_progress(request: Request) -> Response:
        return JSON(await run(backend.lib.index_progress))

    @route("/api/find/{name:path}")
    async def api_find(request: Request) -> Response:
        top = int_param(request, "top", None, 1, 10**9)
        text = request.query_params.get("min_prob")
        try:
            min_prob = float(text) if text not in (None, "") else None
        except ValueError:
            raise BadRequest(f"min_prob must be a number between 0 and 1, not {text!r}") from None
        name = request.path_params["name"]
        found = await run(backend.lib.find, name, top=top, min_prob=min_prob)
        return JSON([match_json(m, "probability") for m in found])

    @route("/api/similar/{id}")
    async def api_similar(request: Request) -> Response:
        top = int_param(request, "top", 20, 1, 10**6)
        found = await run(backend.lib.similar_to_id, image_id(request), top=top)
        return JSON([match_json(m, "similarity") for m in found])

    @route("/api/examples/{name:path}")
    async def api_examples(request: Request) -> Response:
        marks = await run(backend.lib.marks, request.path_params["name"])
        return JSON(
            [
                {
                    "id": m.id,
                    "path": m.path,
                    "label": "positive" if m.label else "negative",
                    "key": mark_key(m.path),
                }
                for m in marks
            ]
        )

    @route("/api/review/{name:path}")
    async def api_review(request: Request) -> Response:
        n = int_param(request, "n", REVIEW, 1, 1000)
        found = await run(backend.review, request.path_params["name"], n)
        return JSON([match_json(m, "probability") for m in found])

    @route("/api/learn/{name:path}", "POST")
    async def api_learn(request: Request) -> Response:
        body = await learn_body(request)
        name = request.path_params["name"]
        record = await run(backend.lib.learn_ids, name, body["add"], body["not"], body["undo"])
        return JSON(class_json(record))

    # -- a class's life: rename, forget (kept 30 days), restore, marks taken back ----------
    @route("/api/rename/{name:path}", "POST")
    async def api_rename(request: Request) -> Response:
        data = await object_body(request, {"to": "the new name"})
        new = data.get("to")
        if not isinstance(new, str):
            raise BadRequest('to must be the new name, a string: {"to": "new name"}')
        record = await run(backend.rename, request.path_params["name"], new)
        return JSON(class_json(record))

    @route("/api/forget/{name:path}", "POST")
    async def api_forget(request: Request) -> Response:
        await object_body(request, {})
        kept = await run(backend.forget, request.path_params["name"])
        return JSON(forgotten_json(kept))

    @route("/api/forgotten")
    async def api_forgotten(request: Request) -> Response:
        return JSON([forgotten_json(r) for r in await run(backend.lib.forgotten)])

    @route("/api/restore/{name:path}", "POST")
    async def api_restore(request: Request) -> Response:
        await object_body(request, {})
        record = await run(backend.lib.restore, request.path_params["name"])
        return JSON(class_json(record))

    @route("/api/drop/{name:path}", "POST")
    async def api_drop(request: Request) -> Response:
        data = await object_body(request, {"ids": "image ids", "marks": "mark keys"})
        ids, keys = _ids(data, "ids"), _keys(data, "marks")
        if not ids and not keys:
            raise BadRequest("nothing to take back: give ids or marks")
        record = await run(backend.drop, request.path_params["name"], ids, keys)
        return JSON(class_json(record))

    add_filing_routes(  # the Suggestions view: /suggest, /api/suggest (issue 25)
        route,
        run,
        page,
        backend.lib,
        learn_body=learn_body,
        object_body=object_body,
        int_param=int_param,
        json=JSON,
        match_json=match_json,
    )

    # -- live updates (static/live.js) ------------------------------------------------
    @route("/api/changes")
    async def api_changes(request: Request) -> Response:
        """What changed since the page's stamp: while the library's files stay as they were,
        a few stats answer (no library call); else the photos embedded since, the classes
        that find them, the counts and the progress (``Backend.changes``)."""
        since = request.query_params.get("since", "")
        key, when = parse_stamp(since)
        now = backend.files_key()
        if key == now:
            return JSON({"stamp": since, "changed": False})
        return JSON(await run(backend.changes, now, when))

    @route("/live/cards")
    async def live_cards(request: Request) -> Response:
        """Cards of photos added to the library (``?ids=1,2,3``), for a grid to append."""
        text = request.query_params.get("ids", "")
        ids = [image_id_of(t) for t in text.split(",") if t]
        if len(ids) > MAX_PAGE:
            raise BadRequest(f"ids: at most {MAX_PAGE} at once")
        found = await run(backend.cards, ids)
        return page("_live_cards.html", photos=found)

    # -- images ------------------------------------------------------------------------
    @route("/thumb/{id}")
    async def thumb(request: Request) -> Response:
        row, frame, seconds = backend.item(image_id(request))
        etag = f'"{backend.thumbs.stamp(row)}{"" if frame is None else f"-{frame}"}"'
        headers = {"etag": etag, "cache-control": "private, no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        try:
            path = await backend.thumbnail(row, frame, seconds)
        except DecodeError as e:
            raise unreadable(e) from None
        return Response(path.read_bytes(), media_type="image/jpeg", headers=headers)

    @route("/video/{id}")
    async def video(request: Request) -> Response:
        """A video's file, by its id (or a frame's) only, for the player: HTTP Range
        requests answered (seeking), only when browsers play its codec."""
        row, frame, _ = backend.item(image_id(request))
        if frame is None:
            raise HTTPException(404)
        media_type = await anyio.to_thread.run_sync(backend.lib.browser_video, row)
        if media_type is None:
            raise UnsupportedMedia("browsers cannot play this video's codec: see its stills")
        headers = {"cache-control": "private, no-cache", "content-disposition": "inline"}
        return FileResponse(row.path, media_type=media_type, headers=headers)

    @route("/photo/{id}")
    async def photo(request: Request) -> Response:
        row = backend.image(image_id(request))
        headers = {"cache-control": "private, no-cache", "content-disposition": "inline"}
        try:
            shown = await anyio.to_thread.run_sync(backend.lib.browser_photo, row)
        except DecodeError as e:
            raise unreadable(e) from None
        if shown.path is not None:
            return FileResponse(shown.path, media_type=shown.media_type, headers=headers)
        return Response(shown.jpeg, media_type=shown.media_type, headers=headers)

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
                status, text = _status_of(exc)
                if status >= 500:
                    print(f"finder serve: error: {type(exc).__name__}: {exc}", file=sys.stderr)
                return error(request, status, text)

        return endpoint

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = "not found" if exc.status_code == 404 else str(exc.detail).lower()
        return error(request, exc.status_code, text)

    routes = [Route(path, answer(fn), methods=methods) for path, fn, methods in handlers]

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        yield
        backend.close()

    app = Starlette(
        routes=routes, exception_handlers={HTTPException: on_http_error}, lifespan=lifespan
    )
    app.state.backend = backend
    return Guard(app, token=token, port=port, host=host, allow_hosts=allow_hosts)


class UnsupportedMedia(FinderError):
    """A video browsers cannot play (status 415)."""

    http_status = 415


def field_of(arg: Arg) -> str:
    """An argument of the library as the API names it: its field (a query parameter or a key
    of the JSON body), which is the library's keyword (``min_prob``, ``top``, ``n``)."""
    return arg.name


def unreadable(error: DecodeError) -> DecodeError:
    """A photo that cannot be decoded, said as the page says it."""
    return DecodeError("the photo cannot be read: ", *error.parts)


def _status_of(exc: Exception) -> tuple[int, str]:
    """The HTTP status and one-line message of an exception raised while answering: ours
    carry their status and name the request's fields."""
    if isinstance(exc, FinderError):
        return exc.http_status, exc.worded(field_of)
    if isinstance(exc, OSError):
        return 409, f"{exc.strerror or exc}"
    return 500, f"internal error: {type(exc).__name__}"
