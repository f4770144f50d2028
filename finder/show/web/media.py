"""Images and videos by catalog id only (never a path from a caller): ``GET /thumb/{id}`` (a
photo's or a video frame's thumbnail, with an ETag), ``GET /photo/{id}`` (the photo as
browsers show it), ``GET /video/{id}`` (a video's file for the player, HTTP Range requests
answered, only when browsers play its codec)."""

from __future__ import annotations

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from finder.errors import DecodeError
from finder.show.web.site import Site, UnsupportedMedia, image_id, unreadable


def add(site: Site) -> None:
    """The images' and videos' routes, added to ``site``."""
    backend, route = site.backend, site.route

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
