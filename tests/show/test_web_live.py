"""The page's live updates through the API (``/api/changes?since=STAMP``, ``/live/cards``) over a
real library served by a real uvicorn, while another writer (an index run in this process, as a
terminal's would be) adds photos; and "classes stay current": each new photo scored by every
class at once (``Library.changes_since``) agrees with what ``find`` answers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from finder.library import Library
from tests.conftest import CLI, make_kinds, make_photo
from tests.show.test_web import TOKEN, Server


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, model_args: list[str]) -> Path:
    base = tmp_path_factory.mktemp("live")
    make_kinds(base / "photos", 5)
    lib = base / "library"
    CLI(lib)("index", str(base / "photos"), *model_args, "--quiet")
    CLI(lib)("learn", "red", *(str(base / "photos" / "red" / f"{i}.jpg") for i in range(3)))
    return lib


@pytest.fixture(scope="module")
def server(library: Path):
    s = Server(library)
    yield s
    s.stop()


def page_stamp(server: Server, route: str) -> str:
    html = server.client.get(route).text
    return re.search(r'id="live" data-stamp="([^"]+)"', html).group(1)


def changes(server: Server, since: str) -> dict:
    r = server.client.get("/api/changes", params={"since": since, "token": TOKEN})
    assert r.status_code == 200, r.text
    return r.json()


def settled(server: Server, since: str) -> tuple[list[dict], str]:
    """Every answer up to the one that says nothing more is to come (``again`` false), asked as
    the page asks (live.js): again after 200 ms while the server holds photos back until its
    vectors open again (at most every second, longer on a loaded machine)."""
    answers = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        c = changes(server, since)
        since = c["stamp"]
        if not c["changed"]:
            break
        answers.append(c)
        if not c["again"]:
            break
        time.sleep(0.2)
    return answers, since


def test_nothing_changed_costs_a_stat_and_says_so(server: Server) -> None:
    stamp = page_stamp(server, "/")
    assert changes(server, stamp) == {"stamp": stamp, "changed": False}
    assert page_stamp(server, "/class/red").split(":")[0] == stamp.split(":")[0]


@pytest.mark.parametrize("since", ["", "x", "abc", "k:nan", "k:inf", ":1.0"])
def test_a_bad_stamp_is_refused_in_one_line(server: Server, since: str) -> None:
    r = server.client.get("/api/changes", params={"since": since, "token": TOKEN})
    assert r.status_code == 400 and "since" in r.json()["error"]


def test_new_photos_come_with_counts_and_the_classes_that_find_them(
    server: Server, library: Path, model_args: list[str], tmp_path: Path
) -> None:
    stamp = page_stamp(server, "/")
    before = server.client.get("/api/status").json()["images"]
    new = tmp_path / "more"
    paths = [make_photo(new / f"r{i}.jpg", "red", seed=300 + i) for i in range(3)]
    paths += [make_photo(new / f"b{i}.jpg", "blue", seed=400 + i) for i in range(2)]
    CLI(library)("index", str(new), "--quiet")  # another writer, as a terminal's index run

    answers, stamp = settled(server, stamp)
    assert answers, "the index run was not noticed"
    last = answers[-1]
    assert not last["again"], "the server still held photos back after a minute"
    assert (last["images"], last["pending"], last["failed"]) == (before + 5, 0, 0)
    with Library(library) as lib:
        ids = {lib.folder.open_catalog().image_by_path(str(p)).id for p in paths}
        found = {m.id for m in lib.find("red")}  # the class's answer, a search of the library
    added = [i for c in answers for i in c["added"]]
    assert sorted(added) == sorted(ids)
    told = {i for c in answers for i in c["classes"].get("red", [])}
    assert told == ids & found  # scored by the class as find scores them
    assert "offline" in last and last["offline_roots"] == []
    # asked again since the stamp: nothing more
    assert changes(server, stamp)["changed"] is False

    # the cards a page appends for them (unknown ids left out)
    html = server.client.get("/live/cards", params={"ids": ",".join(map(str, [*ids, 987654]))})
    assert html.status_code == 200
    assert sorted(map(int, re.findall(r'data-id="(\d+)"', html.text))) == sorted(ids)
    assert server.client.get("/live/cards", params={"ids": "1,../x"}).status_code == 400


def test_classes_stay_current_without_a_search(library: Path) -> None:
    """``changes_since`` scores the photos embedded since a moment with every class at once (a
    product with their vectors), and agrees with ``find`` for each of them."""
    with Library.open_shared(library) as lib:
        everything = lib.changes_since(0.0, limit=10_000)
        assert everything.complete and len(everything.added) == lib.status()["images"]
        for name in [c["name"] for c in lib.classes()]:
            assert set(everything.classes.get(name, [])) == {m.id for m in lib.find(name)}
        assert lib.changes_since(everything.stamp).added == []
        some = lib.changes_since(0.0, limit=2)  # whole commits: more than asked, or fewer
        assert not some.complete and some.stamp < everything.stamp


def test_a_photo_on_an_offline_disk_is_shown_from_its_thumbnail(
    server: Server, library: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    photo = make_photo(disk / "d.jpg", "blue", seed=901)
    CLI(library)("index", str(disk), "--quiet")
    with Library(library) as lib:
        image_id = lib.folder.open_catalog().image_by_path(str(photo)).id
    # the server's vectors hold it once they are opened again (at most every few seconds)
    deadline = time.monotonic() + 60
    while server.client.get(f"/api/similar/{image_id}").status_code != 200:
        assert time.monotonic() < deadline, "the server never saw the new photo"
        time.sleep(0.2)
    online = server.client.get(f"/view/{image_id}").text
    assert 'id="offline"' not in online and f'src="/photo/{image_id}"' in online
    disk.rename(tmp_path / "unplugged")
    try:
        shown = server.client.get(f"/view/{image_id}").text
        assert 'id="offline"' in shown and str(disk) in shown
        assert f'src="/thumb/{image_id}"' in shown and f'src="/photo/{image_id}"' not in shown
        st = server.client.get("/api/status").json()
        assert st["offline"] == 1 and st["offline_roots"] == [str(disk)]
    finally:
        (tmp_path / "unplugged").rename(disk)
