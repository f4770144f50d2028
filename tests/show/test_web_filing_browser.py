"""The Suggestions view in a real browser (Debian's headless Chromium driven by Playwright) over
``finder serve`` in its own process: the round trip of issue 25. Keywords filed in digiKam and
Lightroom sidecars become classes; on the page, from the home page's link, a suggestion confirmed
with ✓ lands in the photo's sidecar as the very keyword in its hierarchy (another keyword the
sidecar held, and every other element of it, unchanged; the photo untouched), one confirmed
with the keyboard (``y``) too; ✗ on a photo finder filed takes the keyword back and marks it;
"take back" undoes a ✗ or a ✓; a strip's "✓ all" files the whole strip."""

from __future__ import annotations

from pathlib import Path

import pytest

from finder.ingest.keywords import sidecar_keywords
from finder.library import Library
from tests.conftest import CLI
from tests.ingest.keyword_files import digikam_sidecar
from tests.show.test_web_browser import ARGS, CHROMIUM, _need_browser, base, page_at, serving
from tests.test_filing import _items, build


@pytest.fixture
def filed_library(tmp_path: Path, model_args) -> tuple[Path, Path]:
    _need_browser()
    root = tmp_path / "photos"
    build(root)
    lib = tmp_path / "library"
    CLI(lib)("index", str(root), *model_args, "-q")
    CLI(lib)("learn", "--from-keywords", "--min", "3")
    return lib, root


@pytest.fixture
def page(filed_library):
    from playwright.sync_api import sync_playwright

    lib, _ = filed_library
    with serving(lib) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        with page_at(browser, url) as pg:  # the URL with the token: sets the cookie
            pg.base = base(url)
            yield pg
        browser.close()


def suggested(lib: Path) -> list[tuple[int, str]]:
    with Library(lib) as library:
        return [(m.id, m.path) for m in library.suggest("red")]


def card(pg, image_id: int):
    return pg.locator(f'#suggested .card[data-id="{image_id}"]')


def test_confirm_on_the_page_writes_the_same_keyword_in_the_same_hierarchy(
    filed_library, page
) -> None:
    lib, root = filed_library
    pg = page
    rows = suggested(lib)
    (first_id, first), (second_id, second) = rows[0], rows[1]
    dk = Path(f"{first}.xmp")  # a digiKam sidecar that holds another keyword already
    dk.write_text(digikam_sidecar(["Places/Paris"]))
    original = _items(dk)
    photo_bytes = Path(first).read_bytes()

    pg.click("#suggest-link")  # the home page's link to the filed classes
    pg.wait_for_url("**/suggest")
    row = pg.locator('tr[data-filed="red"]')
    assert row.locator(".count").inner_text() == str(len(rows))
    row.locator("a").click()
    pg.wait_for_url("**/suggest/red")
    assert pg.locator("#suggested .card[data-id]").count() == len(rows)
    assert "Shapes › Red" in pg.locator("#suggest-info").inner_text()

    card(pg, first_id).locator('button[data-act="add"]').click()  # ✓
    card(pg, first_id).wait_for(state="detached")
    pg.locator(f'#filed-by-finder .card[data-id="{first_id}"]').wait_for()
    assert "filed under red" in pg.locator("#toast").inner_text()
    # the sidecar holds the very keyword, in the hierarchy it was found in; nothing else changed
    assert sidecar_keywords(dk) == ("Places|Paris", "Shapes|Red")
    added = [x for x in _items(dk) if x not in original]
    li = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"
    assert sorted(added) == sorted([(li, "Shapes/Red"), (li, "Shapes|Red"), (li, "Red")])
    assert [x for x in _items(dk) if x not in added] == original
    assert Path(first).read_bytes() == photo_bytes  # the photo never touched

    # the keyboard: the chosen photo is the first suggestion left; y confirms it
    chosen = pg.locator("#suggested .card.current")
    assert chosen.get_attribute("data-id") == str(second_id)
    pg.keyboard.press("y")
    card(pg, second_id).wait_for(state="detached")
    assert sidecar_keywords(f"{second}.xmp") == ("Shapes|Red",)
    assert pg.locator("#filed-by-finder .card[data-id]").count() == 2

    # ✗ on a photo finder filed: the keyword taken back (the sidecar it made, gone), marked ✗
    pg.locator(f'#filed-by-finder .card[data-id="{second_id}"] button[data-act="not"]').click()
    pg.locator(f'#suggest-rejected .card[data-id="{second_id}"]').wait_for()
    assert not Path(f"{second}.xmp").exists()
    with Library(lib) as library:
        assert library.examples("red") == [(second, 0)]
    pg.keyboard.press("ArrowRight")  # move on, then back: the keys choose
    pg.keyboard.press("ArrowLeft")
    third_id = int(pg.locator("#suggested .card.current").get_attribute("data-id"))
    pg.keyboard.press("n")  # ✗ a suggestion: marked, no longer suggested
    pg.locator(f'#suggest-rejected .card[data-id="{third_id}"]').wait_for()
    assert card(pg, third_id).count() == 0
    assert dict(rows)[third_id] not in [p for _, p in suggested(lib)]
    pg.locator(f'#suggest-rejected .card[data-id="{third_id}"] button[data-act="undo"]').click()
    card(pg, third_id).wait_for()  # taken back: suggested again
    pg.locator(f'#filed-by-finder .card[data-id="{first_id}"] button[data-act="undo"]').click()
    pg.locator(f'#filed-by-finder .card[data-id="{first_id}"]').wait_for(state="detached")
    assert _items(dk) == original  # exactly what finder wrote, taken back
    card(pg, first_id).wait_for()

    # a strip's ✓ all: every photo of it filed
    strip_ids = [
        int(i)
        for i in pg.locator('.suggest-strip[data-strip="1"] .card[data-id]').evaluate_all(
            "cards => cards.map(c => c.dataset.id)"
        )
    ]
    pg.locator('.suggest-strip[data-strip="1"] button[data-all="add"]').click()
    card(pg, strip_ids[0]).wait_for(state="detached")
    by_id = dict(rows)
    for i in strip_ids:
        assert "Shapes|Red" in sidecar_keywords(f"{by_id[i]}.xmp")
    pg.screenshot(path=str(lib.parent / "suggest.png"), full_page=True)
