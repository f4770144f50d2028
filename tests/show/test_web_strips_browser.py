"""Teaching by the strip in a real browser (issue 23): the class page opens on a strip of 20
photos pre-set to finder's guess; judged and confirmed with the keyboard alone (no mouse or
pointer event), the class is retrained, the next strip shown and the grid re-ranked; u takes
the strip back; the estimate appears once enough random draws are marked; "all above here are
right" on the ranked grid marks a photo and every one above it at once.

On ../shared/photos' cats and dogs (200 photos) with the shared model, cat learned from 5; the
person knows a cat by its file name (``cat.4001.jpg``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finder.library import Library
from tests.conftest import CLI
from tests.show.test_web_browser import (  # noqa: F401 (browser: a fixture)
    WAIT,
    _need_browser,
    base,
    browser,
    page_at,
    serving,
    wait_decoded,
)


@pytest.fixture(scope="module")
def pets(photos: Path, tflite_model: Path, tmp_path_factory) -> Path:
    _need_browser()
    lib = tmp_path_factory.mktemp("strips-browser") / "library"
    CLI(lib)("index", str(photos / "pets"), "--model", str(tflite_model), "--quiet")
    with Library(lib) as library:
        library.learn("cat", [str(p) for p in sorted((photos / "pets" / "cat").iterdir())[:5]])
    return lib


@pytest.fixture(scope="module")
def served(pets: Path):
    with serving(pets) as url:
        yield url


@pytest.fixture
def page(browser, served: str):  # noqa: F811 (browser: the imported fixture)
    with page_at(browser, served, viewport={"width": 1280, "height": 900}, has_touch=True) as pg:
        yield pg


def open_class(page, served: str) -> None:
    page.goto(f"{base(served)}/class/cat")
    page.wait_for_selector("#teach .verdict")
    # every mouse, pointer and touch event the page sees from now on
    page.evaluate(
        "() => { window.pointed = 0; for (const t of ['mousedown', 'mouseup', 'pointerdown',"
        " 'touchstart']) document.addEventListener(t, () => window.pointed++, true); }"
    )


def tiles(page) -> list[dict]:
    return page.evaluate(
        "() => [...document.querySelectorAll('#verdicts .verdict')].map(t => ({id: "
        "Number(t.dataset.id), guess: t.dataset.guess === '1', say: t.dataset.say === 'yes', "
        "verdict: t.dataset.say, "
        "cat: t.querySelector('img').alt.startsWith('cat.'), at: t.classList.contains('at')}))"
    )


def marks(lib: Path) -> dict[int, int]:
    with Library.open_shared(lib) as library:
        return {m.id: m.label for m in library.marks("cat")}


def skipped(lib: Path) -> set[int]:
    with Library.open_shared(lib) as library:
        return library.folder.open_catalog().skipped("cat")


def judge_by_keys(page, unsure: int | None = None) -> list[dict]:
    """Flip every wrong guess with the keyboard: l (or →) moves on, space flips; the photo at
    ``unsure`` is "not sure" (s)."""
    shown = tiles(page)
    assert shown[0]["at"]  # the cursor starts on the first photo
    for i, t in enumerate(shown):
        if i == unsure:
            page.keyboard.press("s")
        elif t["guess"] != t["cat"]:
            page.keyboard.press(" ")
        if i < len(shown) - 1:
            page.keyboard.press("ArrowRight" if i % 2 else "l")
    return shown


def strip_number(page) -> str:
    return page.locator("#teach").get_attribute("data-strip")


def test_a_strip_judged_and_confirmed_with_the_keyboard_alone_then_taken_back(
    page, served: str, pets: Path
) -> None:
    open_class(page, served)
    wait_decoded(page, "#verdicts img", 20)
    shown = tiles(page)
    assert len(shown) == 20 and all(t["say"] == t["guess"] for t in shown)  # pre-set
    assert not {t["id"] for t in shown} & set(marks(pets))
    # the guesses are visible: ✓ on the photos above the cut, ✗ below
    says = page.locator("#verdicts .say").all_inner_texts()
    assert says == ["✓" if t["guess"] else "✗" for t in shown]
    page.keyboard.press("?")
    assert page.locator("#keys").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys").is_visible()
    # j / k move by rows, h back: the cursor comes back where it was
    page.keyboard.press("j")
    assert tiles(page)[0]["at"] is False
    page.keyboard.press("k")
    page.keyboard.press("l")
    page.keyboard.press("h")
    assert tiles(page)[0]["at"] is True
    first = strip_number(page)
    judge_by_keys(page, unsure=2)
    judged = tiles(page)
    unsure = judged.pop(2)
    assert unsure["verdict"] == "skip" and page.locator(".verdict.is-skip").count() == 1
    assert all(t["say"] == t["cat"] for t in judged)  # every verdict right now
    flips = sum(t["say"] != t["guess"] for t in judged)
    assert page.locator(".verdict.flipped").count() == flips + 1
    page.keyboard.press("Enter")
    page.wait_for_function("(n) => document.querySelector('#teach').dataset.strip !== n", arg=first)
    page.wait_for_selector("#teach .verdict")
    got = marks(pets)
    assert all(got.get(t["id"]) == int(t["cat"]) for t in judged)  # taught, every one
    cats = 5 + sum(t["cat"] for t in judged)
    assert len(got) == 24 and page.locator("#n-pos").inner_text() == str(cats)
    assert unsure["id"] not in got  # "not sure" teaches nothing ...
    nxt = tiles(page)
    assert len(nxt) == 20 and not {t["id"] for t in nxt} & {t["id"] for t in judged}
    assert unsure["id"] not in {t["id"] for t in nxt}  # ... and is not asked again
    assert skipped(pets) == {unsure["id"]}
    in_grid = set(page.locator("#grid .card").evaluate_all("e => e.map(c => Number(c.dataset.id))"))
    assert not in_grid & {t["id"] for t in judged}  # the grid re-ranked without them
    assert "taught 19" in page.locator("#toast").inner_text()  # and 1 not sure
    # u takes the whole strip back: the marks are gone and the strip returns as judged
    page.keyboard.press("u")
    page.wait_for_function("(n) => document.querySelector('#teach').dataset.strip === n", arg=first)
    page.wait_for_function("() => document.querySelector('#n-pos').textContent === '5'")
    assert set(marks(pets)) == set(got) - {t["id"] for t in judged}
    back = tiles(page)
    judged.insert(2, unsure)
    assert [(t["id"], t["verdict"]) for t in back] == [(t["id"], t["verdict"]) for t in judged]
    assert skipped(pets) == set()  # offered again
    assert page.evaluate("() => window.pointed") == 0  # not one mouse, pointer or touch event


def test_the_estimate_shows_once_strips_are_marked_and_a_tap_flips(
    page, served: str, pets: Path
) -> None:
    open_class(page, served)
    assert "not known yet" in page.locator("#estimate").inner_text()
    tile = page.locator("#verdicts .verdict").first
    before = tile.get_attribute("data-say")
    tile.locator(".flip").tap()  # touch: the same as a click
    assert tile.get_attribute("data-say") != before
    tile.locator(".flip").click()
    assert tile.get_attribute("data-say") == before
    for _ in range(3):
        if "% right" in page.locator("#estimate").inner_text():
            break
        first = strip_number(page)
        judge_by_keys(page)
        page.locator("#strip-confirm").click()
        page.wait_for_function(
            "(n) => document.querySelector('#teach').dataset.strip !== n", arg=first
        )
    text = page.locator("#estimate").inner_text()
    assert "% right" in text and "finds about" in text and "drawn at random" in text, text


def test_all_above_here_are_right(page, served: str, pets: Path) -> None:
    open_class(page, served)
    cards = page.locator("#grid .card")
    ids = cards.evaluate_all("e => e.slice(0, 4).map(c => Number(c.dataset.id))")
    cards.nth(3).locator("button[data-above]").click()
    page.wait_for_selector(f'#examples .card[data-id="{ids[3]}"]')
    got = marks(pets)
    assert all(got.get(i) == 1 for i in ids)
    now = set(cards.evaluate_all("e => e.map(c => Number(c.dataset.id))"))
    assert not now & set(ids)
