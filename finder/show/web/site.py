"""What every module of ``finder serve``'s routes shares: the :class:`Site` they are added to
(the backend, the page renderer, the route table), reading a request (ids, numbers, bodies,
each refused in one line naming its field), the JSON response, and errors' HTTP statuses."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from finder.errors import Arg, DecodeError, FinderError, UsageError
from finder.show import as_json
from finder.show.text import path_bytes
from finder.show.web.backend import Backend

PAGE = 100  # photos per page of a grid
MAX_PAGE = 1000
MAX_BODY = 1 << 20  # bytes of a POST body: 100,000 ids of 7 digits take 0.9 MB
MAX_ID = 2**63 - 1  # image ids are SQLite's 64-bit integers
REVIEW = 8  # photos in the "is this right?" strip
_ID = re.compile(r"^[0-9]{1,18}$")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Site:
    """What a module of routes is given (its ``add(site)``): the ``backend``, ``page`` (a
    template rendered as the HTML response, ``page(template, code=200, **context)``), and
    ``route`` to serve its handlers; ``handlers`` in the order added (Starlette's order)."""

    backend: Backend
    page: Callable[..., HTMLResponse]
    handlers: list[tuple[str, Handler, list[str] | None]] = field(default_factory=list)

    def route(self, path: str, *methods: str) -> Callable[[Handler], Handler]:
        """Serve the handler below at ``path`` (GET and HEAD, unless ``methods`` are named)."""

        def add(fn: Handler) -> Handler:
            self.handlers.append((path, fn, list(methods) or None))
            return fn

        return add


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


LEARN_FIELDS = ("add", "not", "undo")


async def learn_body(
    request: Request, fields: tuple[str, ...] = LEARN_FIELDS
) -> dict[str, list[int]]:
    """The body of a ✓ / ✗ / undo: ``{"add": [ids], "not": [ids], "undo": [ids]}`` (each list
    of image ids; ``fields`` may name more, as a strip's ``skip``), every field in the answer."""
    body = await read_body(request)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    except RecursionError:
        raise BadRequest("the body is not JSON that can be read: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object like {"add": [ids], "not": [ids]}')
    unknown = set(data) - set(fields)
    if unknown:
        named = f"{', '.join(fields[:-1])} and {fields[-1]}"
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}: use {named}")
    out: dict[str, list[int]] = {}
    for key in fields:
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
        named = f"{', '.join(fields[:-1])} or {fields[-1]}"
        raise BadRequest(f"nothing to learn: give {named} image ids")
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


def ids_field(data: dict[str, Any], key: str) -> list[int]:
    ids = data.get(key, [])
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_ID for i in ids
    ):
        raise BadRequest(Arg(key), " must be a list of image ids (whole numbers), not paths")
    return ids


def keys_field(data: dict[str, Any], key: str) -> list[str]:
    keys = data.get(key, [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise BadRequest(Arg(key), " must be a list of mark keys (as /api/examples gives them)")
    return keys


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


def status_of(exc: Exception) -> tuple[int, str]:
    """The HTTP status and one-line message of an exception raised while answering: ours
    carry their status and name the request's fields."""
    if isinstance(exc, FinderError):
        return exc.http_status, exc.worded(field_of)
    if isinstance(exc, OSError):
        return 409, f"{exc.strerror or exc}"
    return 500, f"internal error: {type(exc).__name__}"
