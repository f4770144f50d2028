# ruff: noqa: F811 (the fixtures of tests/test_videos.py, imported)
"""Videos on the page (issue 27, phase 3), served by ``finder serve`` in its own process and
driven in Debian's headless Chromium (Playwright), as tests/show/test_web_browser.py does:

* a video's tile in a class's ranking shows its matching frame, its time and a ▶ badge;
* the photo page of a VP9 WebM (which Chromium plays) is a player starting at the moment
  (``currentTime`` within 1 s of the match), listing the video's moments;
* a ✓ on a video's tile teaches the class with that frame;
* an MJPEG AVI (which browsers do not play) is shown as stills with their times and its path;
* the video is served by id with HTTP Range requests, never by a path; an AVI is refused.

On the tree of tests/test_videos.py (a 12 s cat-dog-sunflower clip as MP4, WebM and AVI, and
the photos it is made of), with class cat learned from the cat photos."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from finder.library import Library
from tests.show.test_web_browser import (  # noqa: F401
    _need_browser,
    base,
    browser,
    page,  # noqa: F401
    serving,
)
from tests.test_video_answers import taught  # noqa: F401
from tests.test_videos import indexed, sources, tree  # noqa: F401

WAIT = 60_000


@pytest.fixture(scope="module")
def video_library(taught: Path) -> Path:  # noqa: F811 (taught: the imported fixture)
    """The indexed videos with class ``cat`` learned from the cat photos (this module's own)."""
    return taught


@pytest.fixture(scope="module")
def served(video_library: Path):
    with serving(video_library) as url:
        yield url


@pytest.fixture(scope="module")
def client(served: str):
    with httpx.Client(base_url=base(served), timeout=60) as c:
        c.get(served.replace(base(served), ""))  # the URL with the token: sets the cookie
        yield c


def video_ids(library: Path, tree: Path) -> dict[str, tuple[int, list[tuple[int, float]]]]:
    """The id and frames of each video, by file name."""
    out = {}
    with Library(library) as lib:
        catalog = lib.folder.open_catalog()
        for name in ("pets.mp4", "pets.webm", "pets.avi"):
            row = catalog.image_by_path(str(tree / "videos" / name))
            out[name] = (row.id, catalog.frames_of(row.id))
    return out


def test_the_video_is_served_by_id_with_ranges(client, video_library, tree) -> None:
    ids = video_ids(video_library, tree)
    webm_id, webm_frames = ids["pets.webm"]
    data = (tree / "videos" / "pets.webm").read_bytes()
    whole = client.get(f"/video/{webm_id}")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/webm"
    part = client.get(f"/video/{webm_frames[1][0]}", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    avi = client.get(f"/video/{ids['pets.avi'][0]}")
    assert avi.status_code == 415 and "cannot play" in avi.json()["error"]
    for bad in (str(tree / "videos" / "pets.webm"), "..%2Fpets.webm"):
        r = client.get(f"/video/{bad}")
        assert r.status_code in (400, 404) and "error" in r.json()
    with Library(video_library) as lib:
        photo = lib.folder.open_catalog().image_by_path(
            str(next((tree / "photos").glob("cat-*.jpg")))
        )
    assert client.get(f"/video/{photo.id}").status_code == 404
    thumb = client.get(f"/thumb/{webm_frames[0][0]}")
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    found = client.get("/api/find/cat", params={"top": 20}).json()
    videos = [m for m in found if m["kind"] == "video"]
    assert {Path(m["path"]).name for m in videos} == {"pets.mp4", "pets.webm", "pets.avi"}
    assert all(m["time"] < 4 and m["thumb"] == f"/thumb/{m['frame']}" for m in videos)


def _open_class(page, served: str) -> None:
    page.goto(f"{base(served)}/class/cat")
    page.wait_for_selector("#grid .card.video")


def test_a_video_tile_and_its_player_at_the_moment(page, served, video_library, tree) -> None:
    ids = video_ids(video_library, tree)
    _open_class(page, served)
    webm_id, frames = ids["pets.webm"]
    frame_ids = {f for f, _ in frames}
    tiles = page.locator("#grid .card.video")
    keys = [int(k) for k in tiles.evaluate_all("els => els.map(e => e.dataset.id)")]
    webm_key = next(k for k in keys if k in frame_ids)
    tile = page.locator(f'#grid .card.video[data-id="{webm_key}"]')
    badge = tile.locator(".play").inner_text()
    time = dict(frames)[webm_key]
    assert badge.startswith("▶") and badge.endswith(f"0:0{int(time)}") and time < 4
    page.wait_for_function(
        f"() => document.querySelector('[data-id=\"{webm_key}\"] img').naturalWidth > 0"
    )
    tile.locator("a.img").click()
    page.wait_for_url(f"**/view/{webm_key}")
    page.wait_for_selector("#player")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    current = page.evaluate("document.getElementById('player').currentTime")
    assert abs(current - time) <= 1.0, (current, time)
    assert page.locator("#moments a.moment").count() == len(frames)
    # a later moment of the list seeks the player there
    later = max(t for _, t in frames)
    page.locator(f'#moments a.moment[data-time="{later}"]').click()
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('player').currentTime - {later}) <= 1"
    )
    assert page.url.endswith(f"/view/{webm_key}")


def test_a_yes_on_a_video_tile_teaches_with_its_frame(page, served, video_library, tree):
    ids = video_ids(video_library, tree)
    mp4_frames = {f for f, _ in ids["pets.mp4"][1]}
    _open_class(page, served)
    before = int(page.locator("#n-pos").inner_text())
    keys = [
        int(k)
        for k in page.locator("#grid .card.video").evaluate_all("els => els.map(e => e.dataset.id)")
    ]
    key = next(k for k in keys if k in mp4_frames)
    page.locator(f'#grid .card[data-id="{key}"] button.mark.yes').click()
    page.wait_for_function(f"() => document.getElementById('n-pos').textContent == '{before + 1}'")
    assert page.locator(f'#examples .card[data-id="{key}"]').count() == 1
    with Library(video_library) as lib:
        marks = {m.id: m for m in lib.marks("cat")}
    assert key in marks and marks[key].label == 1
    assert marks[key].path.startswith(str(tree / "videos" / "pets.mp4") + "@")


def test_an_avi_is_shown_as_stills(page, served, video_library, tree) -> None:
    avi_id, frames = video_ids(video_library, tree)["pets.avi"]
    page.goto(f"{base(served)}/view/{frames[-1][0]}")
    page.wait_for_selector("#stills")
    assert page.locator("#player").count() == 0
    stills = page.locator("#stills a.still")
    assert stills.count() == len(frames)
    from finder.library import format_time

    assert stills.locator(".time").all_inner_texts() == [format_time(t) for _, t in frames]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#stills img')].every(i => i.naturalWidth > 0)"
    )
    assert str(tree / "videos" / "pets.avi") in page.locator("#no-play").inner_text()
    assert page.locator(f'#stills a.still.here[href="/view/{frames[-1][0]}"]').count() == 1
