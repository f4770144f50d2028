"""The JSON API of ``finder serve`` (a contract: scripts use it too).

``GET /api/status``, ``/api/classes``, ``/api/find/{name}?top=K&min_prob=P``,
``/api/similar/{id}?top=K``, ``/api/progress``, ``/api/examples/{name}``,
``/api/review/{name}?n=N``, ``POST /api/learn/{name}`` with ``{"add": [ids], "not": [ids],
"undo": [ids]}``; a class's life: ``POST /api/rename/{name}`` with ``{"to": "new name"}``,
``POST /api/forget/{name}`` (kept 30 days), ``GET /api/forgotten``, ``POST
/api/restore/{name}``, ``POST /api/drop/{name}`` with ``{"ids": [image ids], "marks": [keys]}``
(marks taken back: by image id, or by the ``key`` ``/api/examples`` gives each mark, which
also names a photo outside the library).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from finder.show.text import class_json, forgotten_json
from finder.show.web.backend import mark_key
from finder.show.web.site import (
    JSON,
    REVIEW,
    BadRequest,
    Site,
    ids_field,
    image_id,
    int_param,
    keys_field,
    learn_body,
    match_json,
    object_body,
)


def add(site: Site) -> None:
    """The API's routes, added to ``site``."""
    backend, route = site.backend, site.route
    run = backend.run

    @route("/api/status")
    async def api_status(request: Request) -> Response:
        return JSON(await run(backend.lib.status))

    @route("/api/classes")
    async def api_classes(request: Request) -> Response:
        return JSON(await run(backend.classes_json))

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
        ids, keys = ids_field(data, "ids"), keys_field(data, "marks")
        if not ids and not keys:
            raise BadRequest("nothing to take back: give ids or marks")
        record = await run(backend.drop, request.path_params["name"], ids, keys)
        return JSON(class_json(record))
