"""The façade's calls by image id, the web page's (a part of :class:`~finder.library.Library`,
which inherits them): a photo's row, what an id names (a photo, a video, a video's frame), a
video as the page shows it, the library page by page, a photo's neighbours and its scores, what
changed since a moment, an offline photo's root and a thumbnail. Each hands the call to the
library's :class:`~finder.by_id.ById` part; none takes a path from a caller.
"""

from __future__ import annotations

from pathlib import Path

from finder.answers import Match
from finder.by_id import BrowserPhoto, ById, Changes, VideoView, browser_photo, browser_video
from finder.roots import Offline
from finder.store.catalog import ImageRow


class PageCalls:
    """What the web page asks a :class:`~finder.library.Library` by image id."""

    by_id: ById  # made by Library.__init__

    def image(self, image_id: int) -> ImageRow:
        """The catalog row of an indexed image; ``UnknownImage`` otherwise."""
        return self.by_id.image(image_id)

    def item(self, key: int) -> tuple[ImageRow, int | None, float | None]:
        """What an id of the page names: (row, None, None) for a photo, (the video's row, frame
        id, time) for a video's frame (a video's own id: its first frame); see
        :meth:`ById.item`."""
        return self.by_id.item(key)

    def video_view(self, key: int) -> VideoView | None:
        """The video ``key`` names (or one of its frames) as the page shows it: whether a
        browser plays it, the moment, every moment with the classes it matches; None for a
        photo."""
        return self.by_id.video_view(key)

    def browse(self, offset: int = 0, limit: int = 100) -> tuple[int, list[Match]]:
        """(number of indexed images, ``limit`` of them from ``offset``, by id)."""
        return self.by_id.browse(offset, limit)

    def similar_to_id(self, image_id: int, *, top: int = 20) -> list[Match]:
        """The ``top`` indexed images nearest to indexed image ``image_id``."""
        return self.by_id.similar_to_id(image_id, top=top)

    def class_scores(self, image_id: int) -> list[tuple[str, float, int | None]]:
        """(class, probability, mark) of indexed image ``image_id`` in each class."""
        return self.by_id.class_scores(image_id)

    def last_change(self) -> float:
        """The moment up to which this library's answers are current (see
        :meth:`ById.last_change`): what a page shown now asks ``changes_since``."""
        return self.by_id.last_change()

    def changes_since(self, since: float, limit: int = 500) -> Changes:
        """The photos embedded after ``since``, which of them each class finds, and the counts
        (see :meth:`ById.changes_since`): a page's live updates."""
        return self.by_id.changes_since(since, limit)

    def offline(self, image_id: int) -> Offline | None:
        """The offline root (or disk) indexed image ``image_id`` is on, when its file is not
        there now because of it; None otherwise (see :mod:`finder.roots`)."""
        return self.by_id.offline(image_id)

    def thumbnail(self, image_id: int) -> Path:
        """The thumbnail file of an indexed image, made now when missing."""
        return self.by_id.thumbnail(image_id)

    @staticmethod
    def browser_photo(row: ImageRow) -> BrowserPhoto:
        """The photo of an image's row as a browser is sent it: its own file, or a JPEG made
        from it. Reads that file only: safe from any thread."""
        return browser_photo(row)

    @staticmethod
    def browser_video(row: ImageRow) -> str | None:
        """The media type a browser is sent the video of ``row`` as, when browsers play its
        codec; else None (the page shows its moments as stills). Reads its header only."""
        return browser_video(row)
