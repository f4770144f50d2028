"""The page live, in a real browser (Debian's headless Chromium driven by Playwright): while the
page is open, another process indexes photos, and the page shows them without a reload: the
home page's counts (issue 24, 8: within two of the page's one-second questions after a run's
end, however short the run), its grid, and a class page that re-ranks with a quiet note
("3 new photos of red"). Offline roots are shown on the home page."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, make_kinds, make_photo
from tests.show.test_web_browser import (  # noqa: F401 (browser: a fixture)
    WAIT,
    _need_browser,
    browser,
    page_at,
    serving,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, model_args: list[str]) -> Path:
    _need_browser()
    base = tmp_path_factory.mktemp("livebrowser")
    make_kinds(base / "photos", 4)
    make_photo(base / "disk" / "d.jpg", "blue", seed=99)
    lib = base / "library"
    CLI(lib)("index", str(base / "photos"), str(base / "disk"), *model_args, "--quiet")
    CLI(lib)("learn", "red", *(str(base / "photos" / "red" / f"{i}.jpg") for i in range(3)))
    return base


@pytest.fixture(scope="module")
def served(folder: Path):
    with serving(folder / "library") as url:
        yield url


@pytest.fixture
def page(browser, served: str):  # noqa: F811 (browser: the imported fixture)
    with page_at(browser, served) as pg:
        yield pg


def index_elsewhere(folder: Path, root: Path) -> None:
    """An index run in another process than the server's (this test's, as a terminal's)."""
    CLI(folder / "library")("index", str(root), "--quiet")


def count(page) -> int:
    return int(page.text_content("#n-images"))


def test_home_page_shows_a_short_run_without_a_reload(page, folder: Path, tmp_path) -> None:
    """Issue 24, 8: one photo indexed by a run of a second or so; the home page says the new
    count at the page's first or second question after the run's end (it asks each second)."""
    before = count(page)
    asked: list[float] = []
    page.on(
        "request", lambda r: asked.append(time.monotonic()) if "/api/changes" in r.url else None
    )
    page.evaluate("() => { window.navigated = false; }")  # gone if the page reloads
    added = make_photo(tmp_path / "one" / "a.jpg", "green", seed=123)
    index_elsewhere(folder, added.parent)
    ended = time.monotonic()
    page.wait_for_function(
        f"() => document.querySelector('#n-images').textContent == '{before + 1}'"
    )
    seen = time.monotonic()
    questions = [t for t in asked if ended <= t <= seen]
    print(f"shown {seen - ended:.2f} s after the run's end, {len(questions)} questions")
    assert len(questions) <= 2, questions
    assert page.evaluate("() => window.navigated") is False  # no reload
    assert page.text_content("section.ranking h2 small") == str(before + 1)
    assert page.text_content('[data-live="pending"]') == "0"
    # the photo's card is added to the grid (its end is shown: no "more" link), marked new
    new_id = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('#grid .card')].map(c => +c.dataset.id))"
    )
    assert page.locator(f'#grid .card.arrived[data-id="{new_id}"]').count() == 1
    assert re.fullmatch(r"1 new photo.*", page.text_content("#live-note"))


def test_a_class_page_reranks_with_a_quiet_note(page, served: str, folder: Path, tmp_path) -> None:
    page.goto(served.split("/?", 1)[0] + "/class/red")
    page.wait_for_selector("#ranking .card")
    shown = page.eval_on_selector_all("#ranking .card", "cs => cs.map(c => +c.dataset.id)")
    page.evaluate("() => { window.navigated = false; }")
    new = [make_photo(tmp_path / "reds" / f"{i}.jpg", "red", seed=700 + i) for i in range(3)]
    index_elsewhere(folder, tmp_path / "reds")
    page.wait_for_function(
        "() => { const e = document.querySelector('#live-note'); "
        "return e && !e.hidden && /^[0-9]+ new photos? of red$/.test(e.textContent); }"
    )
    with_api = page.request.get(served.split("/?", 1)[0] + "/api/find/red").json()
    new_paths = {str(p) for p in new}
    entering = [m["id"] for m in with_api if m["path"] in new_paths]
    n = len(entering)
    assert page.text_content("#live-note") == f"{n} new photo{'s' if n > 1 else ''} of red"
    page.wait_for_function(
        "(ids) => ids.every(i => document.querySelector(`#ranking .card.arrived[data-id='${i}']`))",
        arg=entering,
    )
    ranked = page.eval_on_selector_all("#ranking .card", "cs => cs.map(c => +c.dataset.id)")
    # ranked as find ranks them: its answer first (the class's examples are shown apart, not
    # in its ranking), then the photos below the cut-off
    above = [m["id"] for m in with_api if m["id"] in set(ranked)]
    assert ranked[: len(above)] == above
    assert set(entering) <= set(ranked)
    assert set(shown) <= set(ranked)
    assert page.evaluate("() => window.navigated") is False


def test_offline_roots_are_shown(page, served: str, folder: Path) -> None:
    disk = folder / "disk"
    away = folder / "disk-unplugged"
    shutil.move(disk, away)
    try:
        page.goto(served.split("/?", 1)[0] + "/")
        box = page.locator("#offline")
        assert box.is_visible()
        assert page.text_content('[data-live="offline"]') == "1"
        assert str(disk) in box.get_attribute("title")
    finally:
        shutil.move(away, disk)
    page.reload()
    assert not page.locator("#offline").is_visible()
