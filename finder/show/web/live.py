"""The page's live updates (``static/live.js``): ``GET /api/changes?since=STAMP`` (what changed
since a page was shown) and ``GET /live/cards?ids=1,2,3`` (cards of photos added since, for a
grid to append)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from finder.show.web.site import JSON, MAX_PAGE, BadRequest, Site, image_id_of, parse_stamp


def add(site: Site) -> None:
    """The live updates' routes, added to ``site``."""
    backend, page, route = site.backend, site.page, site.route

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
        return JSON(await backend.run(backend.changes, now, when))

    @route("/live/cards")
    async def live_cards(request: Request) -> Response:
        """Cards of photos added to the library (``?ids=1,2,3``), for a grid to append."""
        text = request.query_params.get("ids", "")
        ids = [image_id_of(t) for t in text.split(",") if t]
        if len(ids) > MAX_PAGE:
            raise BadRequest(f"ids: at most {MAX_PAGE} at once")
        found = await backend.run(backend.cards, ids)
        return page("_live_cards.html", photos=found)
