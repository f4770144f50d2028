"""The page's Suggestions view (issue 25): classes made from what the person filed, and the
photos finder would file under them.

Pages: ``/suggest`` lists every filed class (``learn --from-keywords / --from-folders``) with its
source and its count of suggestions; ``/suggest/{name}`` shows one class's suggestions in strips
of ``STRIP`` photos, best first, each confirmed (✓) or rejected (✗) as on the class page (keys:
←/→ move, ``y`` ✓, ``n`` ✗, ``u`` takes the last one back: ``static/suggest.js``), one ``POST
/suggest/{name}`` a click (the body as ``/api/learn``'s: ``add``, ``not``, ``undo`` ids) answered
with the page as it now is.

What a decision does (``Library`` / ``finder.filing.Filing``, nothing of the web's own):

* ✓ on a keyword class writes its very keyword, in the hierarchy it was found in, into the
  photo's sidecar (merged as ``finder tag`` merges; the photo never touched):
  ``Library.apply_suggestions``. On a folder class it is a ✓ mark: the photo is listed for
  copying or linking into the folder (``POST /api/file/{name}`` with ``{"mode": "copy"}`` or
  ``"link"``), never moved.
* ✗ marks the photo as not of the class (the class is trained again); on a photo whose
  sidecar finder wrote the keyword into, it first takes exactly that back
  (``Library.unapply_suggestions``).
* undo takes a decision back: the keyword written (without a ✗), or the mark.

JSON twins: ``GET /api/suggest`` (``finder suggest --json``'s list: name, source,
suggestions), ``GET /api/suggest/{name}?top=K`` (``find --json``'s rows), ``POST
/api/suggest/{name}`` (the decisions; answers what was done).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from finder.errors import Arg, UsageError
from finder.library import Library, Match

KEYWORD, FOLDER = "keyword", "folder"  # a filed class's source, as classes --json says it
STRIP = 20  # photos judged at one glance
SHOWN = 200  # suggestions on the page at once (the next ones come as these are judged)
Route = Callable[..., Callable[[Callable[[Request], Awaitable[Response]]], Any]]


def suggest_list(lib: Library) -> dict[str, Any]:
    """Every filed class with its source and its count of suggestions."""
    filings = {f.name: f for f in lib.folder.open_catalog().filings()}
    rows = [
        {"name": n, "source": s, "key": shown_key(filings[n].source, filings[n].key), "count": c}
        for n, s, c in lib.suggestion_counts()
    ]
    return {"filed": rows, "classes": lib.classes()}


def suggest_view(lib: Library, name: str, shown: int = SHOWN) -> dict[str, Any]:
    """One filed class's suggestions in strips, what finder filed for it, the ✗ given."""
    record = lib.class_record(name)
    filing = lib.filing.filing(record["name"])
    found = lib.suggest(record["name"])
    marks = lib.marks(record["name"])
    written = []
    for path in lib.filing.written(record["name"]):
        row = lib.folder.open_catalog().image_by_path(path)
        if row is not None:
            written.append(Match(path, 1.0, row.id))
    confirmed = lib.filing.confirmed(record["name"])
    page = found[:shown]
    return {
        "record": record,
        "filing": filing,
        "key": shown_key(filing.source, filing.key),
        "total": len(found),
        "strips": [page[i : i + STRIP] for i in range(0, len(page), STRIP)],
        "strip_size": STRIP,
        "filed": written if filing.source == KEYWORD else confirmed,
        "rejected": [m for m in marks if m.label == 0 and m.id is not None],
        "classes": lib.classes(),
    }


def decide(lib: Library, name: str, marks: dict[str, list[int]]) -> dict[str, Any]:
    """✓ (``add``), ✗ (``not``) and undo (``undo``) on suggestions of class ``name``, by image
    id (see the module docstring). Returns what was done: ``filed`` (sidecars written, or
    photos listed for the folder), ``rejected``, ``undone``, and ``errors`` (one line each, for
    a sidecar left alone)."""
    record = lib.class_record(name)
    name = record["name"]
    filing = lib.filing.filing(name)
    path_of = {i: lib.item(i)[0].path for k in ("add", "not", "undo") for i in marks[k]}
    written = set(lib.filing.written(name))
    marked = {m.id: m.label for m in lib.marks(name) if m.id is not None}
    errors: list[str] = []
    done: dict[str, list[int]] = {"filed": [], "rejected": [], "undone": []}
    if marks["add"]:
        if filing.source == KEYWORD:
            tagged, errors = lib.apply_suggestions(name, [path_of[i] for i in marks["add"]])
            ok = {t.photo for t in tagged}
            done["filed"] = [i for i in marks["add"] if path_of[i] in ok]
        else:
            lib.learn_ids(name, add=marks["add"])
            done["filed"] = list(marks["add"])
    take_back = [i for i in marks["not"] if path_of[i] in written]
    if take_back:
        back, more = lib.unapply_suggestions(name, [path_of[i] for i in take_back])
        errors += more
    rest = [i for i in marks["not"] if i not in take_back]
    if rest:
        lib.learn_ids(name, not_=rest)
    done["rejected"] = list(marks["not"])
    unwrite = [i for i in marks["undo"] if path_of[i] in written]
    if unwrite:
        _, more = lib.unapply_suggestions(name, [path_of[i] for i in unwrite], mark=False)
        errors += more
    unmark = [i for i in marks["undo"] if i not in unwrite and i in marked]
    if unmark:
        lib.learn_ids(name, undo=unmark)
    done["undone"] = unwrite + unmark
    return {"name": name, "source": filing.source, **done, "errors": errors}


def file_confirmed(lib: Library, name: str, mode: str) -> dict[str, Any]:
    """Copy or link the photos confirmed for folder class ``name`` into its folder."""
    done = lib.filing.file_confirmed(name, mode)
    return {
        "folder": lib.filing.filing(name).key,
        "mode": mode,
        "files": [{"photo": d.source, "file": d.target, "status": d.status} for d in done],
    }


def shown_key(source: str, key: str) -> str:
    """A filing's key as the page says it: a keyword's hierarchy, a folder's path."""
    return key if source == FOLDER else key.replace("|", " › ")


def add_routes(
    route: Route,
    run: Callable[..., Awaitable[Any]],
    page: Callable[..., Response],
    lib: Library,
    *,
    learn_body: Callable[[Request], Awaitable[dict[str, list[int]]]],
    object_body: Callable[[Request, dict[str, str]], Awaitable[dict[str, Any]]],
    int_param: Callable[..., int | None],
    json: Callable[..., Response],
    match_json: Callable[[Any, str], dict],
) -> None:
    """Serve the Suggestions view with ``finder serve``'s own helpers (``app.create_app``)."""

    @route("/suggest")
    async def suggest_page(request: Request) -> Response:
        return page("suggestions.html", **(await run(suggest_list, lib)))

    @route("/suggest/{name:path}")
    async def suggest_class(request: Request) -> Response:
        view = await run(suggest_view, lib, request.path_params["name"])
        return page("suggest.html", **view)

    @route("/suggest/{name:path}", "POST")
    async def suggest_decide(request: Request) -> Response:
        """A ✓, ✗ or undo on the Suggestions view: done, and the view answers as it now is
        (what was done in ``#suggest-done``, as ``POST /api/suggest`` answers it)."""
        body = await learn_body(request)
        name = request.path_params["name"]

        def both() -> tuple[dict, dict]:
            done = decide(lib, name, body)
            return done, suggest_view(lib, done["name"])

        done, view = await run(both)
        return page("suggest.html", **view, done=done)

    @route("/api/suggest")
    async def api_suggest_list(request: Request) -> Response:
        counts = await run(lib.suggestion_counts)
        return json([{"name": n, "source": s, "suggestions": c} for n, s, c in counts])

    @route("/api/suggest/{name:path}")
    async def api_suggest(request: Request) -> Response:
        top = int_param(request, "top", None, 1, 10**9)
        found = await run(lib.suggest, request.path_params["name"], top=top)
        return json([match_json(m, "probability") for m in found])

    @route("/api/suggest/{name:path}", "POST")
    async def api_decide(request: Request) -> Response:
        body = await learn_body(request)
        return json(await run(decide, lib, request.path_params["name"], body))

    @route("/api/file/{name:path}", "POST")
    async def api_file(request: Request) -> Response:
        data = await object_body(request, {"mode": "copy, link or hardlink"})
        mode = data.get("mode", "copy")
        if not isinstance(mode, str):
            raise UsageError(Arg("mode"), " must be copy, link or hardlink")
        return json(await run(file_confirmed, lib, request.path_params["name"], mode))
