"""The page's classes in a real browser (issue 24, item 16): Debian's headless Chromium driven
by Playwright, against ``finder serve`` in its own process.

Eight species of ../shared/photos/flowers17 (160 photos) indexed with the shared TFLite model,
a class for each: the Examples strip that holds more than it shows says so (a fade and an arrow
at its edge, which scroll it); the error message never covers the selection bar (wide and
narrow windows); past six classes the top bar's classes are one menu with a search box; and
the controls of a class's life: rename, forget (asked first, kept 30 days, restored from the
home page or the message's Undo), taking back an example (an indexed photo's, and one outside
the library). Screenshots go to the test's folder.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from finder.library import Library
from tests.conftest import CLI
from tests.show.test_web_browser import (  # noqa: F401 (browser: a fixture)
    WAIT,
    _need_browser,
    base,
    browser,
    serving,
    wait_decoded,
)

SPECIES = ["bluebell", "buttercup", "crocus", "daffodil", "daisy", "iris", "snowdrop", "tulip"]


@pytest.fixture(scope="module")
def flower_library(photos: Path, tflite_model: Path, tmp_path_factory) -> Path:
    _need_browser()
    lib = tmp_path_factory.mktemp("classes-browser") / "library"
    roots = [str(photos / "flowers17" / s) for s in SPECIES]
    CLI(lib)("index", *roots, "--model", str(tflite_model), "--quiet")
    with Library(lib) as library:
        for species in SPECIES:
            shots = sorted((photos / "flowers17" / species).iterdir())
            many = 7 if species == "bluebell" else 2  # bluebell: more than its strip shows
            library.learn(species, [str(p) for p in shots[:many]])
        # an example whose photo is not in the library (another species, not indexed)
        outside = sorted((photos / "flowers17" / "pansy").iterdir())[0]
        library.learn("tulip", [str(outside)])
    return lib


@pytest.fixture(scope="module")
def served(flower_library: Path):
    with serving(flower_library) as url:
        yield url


def new_page(browser, served: str, width: int = 1280, height: int = 860):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.set_default_timeout(WAIT)
    pg.goto(served)
    return context, pg


@pytest.fixture
def page(browser, served: str):  # noqa: F811 (browser: the imported fixture)
    context, pg = new_page(browser, served)
    yield pg
    context.close()
    assert not pg.errors, pg.errors


def open_class(page, served: str, name: str) -> None:
    page.goto(f"{base(served)}/class/{name}")
    page.wait_for_selector("#grid .card")


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def test_the_examples_strip_shows_that_it_scrolls(page, served: str, tmp_path: Path) -> None:
    open_class(page, served, "bluebell")
    wait_decoded(page, "#examples .card img", 7)
    strip = page.locator("#examples .rowwrap")
    row = box(page, "#examples .row")
    cards = [page.locator("#examples .card").nth(k).bounding_box() for k in range(7)]
    cut = [k for k, c in enumerate(cards) if c["x"] + c["width"] > row["x"] + row["width"] + 1]
    assert cut and cut[0] <= 5  # a card is cut at the strip's edge ...
    assert "more-right" in strip.get_attribute("class")  # ... and the strip says there is more
    right, left = strip.locator(".scroll.right"), strip.locator(".scroll.left")
    assert right.is_visible() and not left.is_visible()
    arrow = right.bounding_box()
    assert row["x"] + row["width"] - 60 < arrow["x"] < row["x"] + row["width"]  # at its edge
    fade = page.evaluate(
        "() => getComputedStyle(document.querySelector('#examples .rowwrap'), '::after').opacity"
    )
    assert float(fade) == 1
    page.screenshot(path=str(tmp_path / "strip.png"))

    right.click()  # the arrow scrolls the strip on
    page.wait_for_function("() => document.querySelector('#examples .row').scrollLeft > 50")
    page.wait_for_function(
        "() => document.querySelector('#examples .rowwrap').classList.contains('more-left')"
    )
    assert left.is_visible()
    page.locator("#examples .row").evaluate("r => r.scrollTo({left: r.scrollWidth})")
    page.wait_for_function(
        "() => !document.querySelector('#examples .rowwrap').classList.contains('more-right')"
    )
    assert not right.is_visible()

    # a strip that holds what it shows has no arrows: the counter-examples (none yet)
    negatives = page.locator("#negatives .rowwrap")
    assert "overflows" not in (negatives.get_attribute("class") or "")
    assert not negatives.locator(".scroll.right").is_visible()

    # after a click the strips come back from the server, and still say so
    page.locator("#grid .card button[data-act=not]").first.click()
    page.wait_for_selector("#negatives .card")
    page.wait_for_function(
        "() => document.querySelector('#examples .rowwrap.more-right .scroll.right')"
    )
    page.locator("#negatives .card button[data-act=undo]").click()
    page.wait_for_function("() => !document.querySelector('#negatives .card')")


def _apart(a: dict, b: dict) -> bool:
    return (
        a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
        or a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
    )


@pytest.mark.parametrize(("width", "height"), [(1280, 860), (640, 700)])
def test_the_error_message_never_covers_the_selection_bar(
    browser,  # noqa: F811 (browser: the imported fixture)
    served: str,
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    context, page = new_page(browser, served, width, height)
    try:
        open_class(page, served, "daisy")
        for k in range(3):
            page.locator("#grid .card .pick input").nth(k).check()
        assert page.locator("#selection").is_visible()
        page.locator("#sel-name").fill("x" * 201)  # refused: too long a name
        page.locator("#sel-form button[type=submit]").click()
        page.wait_for_selector("#toast.bad:not([hidden])")
        assert "at most 200 characters" in page.locator("#toast").inner_text()
        toast, bar = box(page, "#toast"), box(page, "#selection")
        assert _apart(toast, bar), (toast, bar)
        assert toast["y"] + toast["height"] <= bar["y"]  # above it
        assert bar["y"] + bar["height"] <= height and toast["y"] >= 0  # both on the screen
        page.screenshot(path=str(tmp_path / f"error-{width}.png"))
        # the bar still works under the message: its buttons take clicks
        page.locator("#sel-clear").click()
        assert page.locator("#selection").is_hidden()
    finally:
        context.close()
    assert not page.errors, page.errors


def test_many_classes_are_a_menu_with_a_search_box(page, served: str, tmp_path: Path) -> None:
    open_class(page, served, "iris")
    nav = page.locator(".classes-nav")
    assert "as-menu" in nav.get_attribute("class")
    top = box(page, "header.top")
    assert top["height"] < 60  # one line, not a block of wrapped names
    menu = page.locator("#classes-menu")
    assert page.locator("#classes-menu summary").inner_text().startswith("iris")
    assert not page.locator("#class-search").is_visible()  # closed until asked
    page.locator("#classes-menu summary").click()
    assert page.locator("#class-search").is_visible()
    shown = page.locator("#class-list a:not([hidden])")
    assert shown.count() == len(SPECIES)
    assert page.locator("#class-list a.here").inner_text() == "iris"
    page.screenshot(path=str(tmp_path / "menu.png"))
    page.locator("#class-search").fill("DAF")  # any case, part of the name
    assert shown.all_inner_texts() == ["daffodil"]
    page.locator("#class-search").fill("zzz")
    assert shown.count() == 0 and page.locator("#class-none").is_visible()
    page.locator("#class-search").fill("tul")
    page.locator("#class-search").press("Enter")
    page.wait_for_url(re.compile(r"/class/tulip$"))
    assert page.locator("h1").inner_text() == "tulip"
    assert menu.get_attribute("open") is None
    page.goto(base(served) + "/")  # the home page too
    assert "as-menu" in page.locator(".classes-nav").get_attribute("class")
    assert page.locator("#classes-menu summary").inner_text().startswith("Classes")


def test_rename_forget_restore_and_take_back(
    page, served: str, flower_library: Path, tmp_path: Path
) -> None:
    open_class(page, served, "crocus")
    page.locator("#rename-open").click()
    page.locator("#rename-name").fill("spring crocus")
    page.locator("#rename-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/class/spring%20crocus$"))
    assert page.locator("h1").inner_text() == "spring crocus"
    with Library(flower_library) as lib:
        names = [c["name"] for c in lib.classes()]
    assert "spring crocus" in names and "crocus" not in names

    # a name taken: refused in one line, nothing changed
    page.locator("#rename-open").click()
    page.locator("#rename-name").fill("daisy")
    page.locator("#rename-form button[type=submit]").click()
    page.wait_for_selector("#toast.bad:not([hidden])")
    assert "'daisy' exists already" in page.locator("#toast").inner_text()
    assert page.url.endswith("/class/spring%20crocus")

    # forget asks first; cancel keeps it
    page.locator("#forget-open").click()
    confirm = page.locator("#forget-confirm")
    assert confirm.is_visible() and "kept 30 days" in confirm.inner_text()
    confirm.locator("button[data-close]").click()
    assert confirm.is_hidden()
    page.locator("#forget-open").click()
    page.screenshot(path=str(tmp_path / "forget.png"))
    page.locator("#forget-yes").click()
    page.wait_for_url(re.compile(r"/$"))
    page.wait_for_selector("#toast:not([hidden])")
    assert "forgot spring crocus: kept 30 days" in page.locator("#toast").inner_text()
    row = page.locator('#forgotten tr[data-forgotten="spring crocus"]')
    assert row.count() == 1 and "2" in row.inner_text()
    with Library(flower_library) as lib:
        assert "spring crocus" not in [c["name"] for c in lib.classes()]
        (kept,) = lib.forgotten()
    assert time.strftime("%Y-%m-%d", time.localtime(kept["kept_until"])) in row.inner_text()
    page.locator("#toast button.undo").click()  # the message's Undo restores it
    page.wait_for_url(re.compile(r"/class/spring%20crocus$"))
    assert page.locator("#n-pos").inner_text() == "2"

    # forgotten again, restored from the home page's list
    page.locator("#forget-open").click()
    page.locator("#forget-yes").click()
    page.wait_for_url(re.compile(r"/$"))
    page.locator('#forgotten button[data-restore="spring crocus"]').click()
    page.wait_for_url(re.compile(r"/class/spring%20crocus$"))
    page.goto(base(served) + "/")
    assert page.locator("#forgotten").count() == 0

    # taking back an example: an indexed photo's, then one outside the library
    open_class(page, served, "tulip")
    assert page.locator("#n-pos").inner_text() == "3"
    first = page.locator("#examples .card[data-id]").first
    taken = first.get_attribute("data-id")
    first.locator("button[data-act=undo]").click()
    page.wait_for_function("() => document.querySelector('#n-pos').textContent === '2'")
    assert page.locator(f'#examples .card[data-id="{taken}"]').count() == 0
    outside = page.locator("#examples .card.outside")
    assert outside.count() == 1 and "not in this library" in outside.inner_text()
    outside.locator("button[data-drop]").click()
    page.wait_for_function("() => document.querySelector('#n-pos').textContent === '1'")
    assert page.locator("#examples .card.outside").count() == 0
    assert "taken back" in page.locator("#toast").inner_text()
    # the last example cannot be taken back: one line, nothing changed
    page.locator("#examples .card[data-id] button[data-act=undo]").click()
    page.wait_for_selector("#toast.bad:not([hidden])")
    assert page.locator("#n-pos").inner_text() == "1"
    with Library(flower_library) as lib:
        marks = lib.marks("tulip")
    assert len(marks) == 1 and marks[0].id is not None and marks[0].label == 1
