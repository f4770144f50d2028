"""The Suggestions view's routes (issue 25) over a real library served by a real uvicorn: the
list of filed classes, a class's suggestions as ``suggest --json`` gives them, ✓ / ✗ / undo by
id (the sidecar written with the very keyword and taken back to what it was), a folder class's
confirmed photos copied into its folder (the originals left where they are), and bad requests
refused in one line with the library unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finder.ingest.keywords import sidecar_keywords
from tests.ingest.keyword_files import digikam_sidecar
from tests.show.test_web import Server, catalog_ids, snapshot
from tests.test_filing import _items, filed, kind  # noqa: F401 (filed: a fixture)


@pytest.fixture
def served(filed):  # noqa: F811 (filed: the imported fixture)
    cli, _ = filed
    s = Server(cli.library)
    yield s
    s.stop()


def test_the_list_and_a_class_s_suggestions_are_suggest_s(filed, served) -> None:  # noqa: F811
    cli, root = filed
    empty = served.client.get("/suggest")
    assert empty.status_code == 200 and "No class was made from keywords" in empty.text
    cli("learn", "--from-keywords", "--min", "3")
    assert served.client.get("/api/suggest").json() == cli.json("suggest")
    rows = served.client.get("/api/suggest/red").json()
    want = cli.json("suggest", "red")
    assert [(r["path"], r["probability"]) for r in rows] == [
        (r["path"], r["probability"]) for r in want
    ]
    assert all(r["thumb"] == f"/thumb/{r['id']}" for r in rows)
    listing = served.client.get("/suggest").text
    assert 'href="/suggest/red"' in listing and "Shapes › Red" in listing
    page = served.client.get("/suggest/red").text
    ids = catalog_ids(cli.library)
    for r in rows:  # every suggestion is on the page, with ✓ and ✗
        assert f'data-id="{ids[r["path"]]}"' in page
    assert page.count('data-act="add"') == len(rows) and "data-all" in page


def test_confirm_writes_the_keyword_reject_and_undo_take_it_back(filed, served) -> None:  # noqa: F811
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    ids = catalog_ids(cli.library)
    rows = served.client.get("/api/suggest/red").json()
    first, second = rows[0]["path"], rows[1]["path"]
    dk = Path(f"{first}.xmp")
    dk.write_text(digikam_sidecar(["Places/Paris"]))  # a sidecar holding another keyword
    original = _items(dk)
    photo_bytes = Path(first).read_bytes()
    done = served.client.post("/api/suggest/red", json={"add": [ids[first], ids[second]]})
    assert done.status_code == 200, done.text
    got = done.json()
    assert got["filed"] == [ids[first], ids[second]] and got["errors"] == []
    assert sidecar_keywords(dk) == ("Places|Paris", "Shapes|Red")
    assert sidecar_keywords(f"{second}.xmp") == ("Shapes|Red",)
    assert Path(first).read_bytes() == photo_bytes
    left = [r["path"] for r in served.client.get("/api/suggest/red").json()]
    assert first not in left and second not in left  # filed now: no longer suggested
    page = served.client.get("/suggest/red").text
    assert "2 sidecars hold the keyword finder wrote" in page
    # undo: the keyword taken back, nothing else; the photo unjudged (suggested again)
    back = served.client.post("/api/suggest/red", json={"undo": [ids[first]]}).json()
    assert back["undone"] == [ids[first]]
    assert _items(dk) == original
    assert first in [r["path"] for r in served.client.get("/api/suggest/red").json()]
    # ✗ on a photo finder filed: the keyword taken back and the photo marked not red
    served.client.post("/api/suggest/red", json={"not": [ids[second]]})
    assert not Path(f"{second}.xmp").exists()
    marks = served.client.get("/api/examples/red").json()
    assert [(m["path"], m["label"]) for m in marks] == [(second, "negative")]
    # ✗ on a suggestion: a mark, the class retrained, the photo no longer suggested
    served.client.post("/api/suggest/red", json={"not": [ids[first]]})
    assert sidecar_keywords(dk) == ("Places|Paris",)
    left = [r["path"] for r in served.client.get("/api/suggest/red").json()]
    assert first not in left and second not in left
    # the ✗ taken back from the view: suggested again
    served.client.post("/api/suggest/red", json={"undo": [ids[first]]})
    assert first in [r["path"] for r in served.client.get("/api/suggest/red").json()]


def test_a_folder_class_s_confirmed_photos_are_copied_never_moved(filed, served) -> None:  # noqa: F811
    cli, root = filed
    # red and blue only: tagged/ (red and blue photos) as a sibling would contest the reds
    cli("learn", "--from-folders", str(root / "folders"), "--min", "5")
    ids = catalog_ids(cli.library)
    rows = served.client.get("/api/suggest/red").json()
    # two of unsorted/'s reds (tagged/'s, unfiled here, have keyword sidecars already)
    reds = [r["path"] for r in rows if kind(r["path"]) == "r" and "unsorted" in r["path"]][:2]
    assert len(reds) == 2
    refused = served.client.post("/api/file/red", json={"mode": "copy"})  # nothing confirmed
    assert refused.status_code == 200 and refused.json()["files"] == []
    got = served.client.post("/api/suggest/red", json={"add": [ids[p] for p in reds]}).json()
    assert got["filed"] == [ids[p] for p in reds] and got["source"] == "folder"
    for p in reds:
        assert not os.path.exists(f"{p}.xmp")  # no sidecar for a folder class
    page = served.client.get("/suggest/red").text
    assert "2 to copy or link into" in page and 'data-file="copy"' in page
    copied = served.client.post("/api/file/red", json={"mode": "copy"})
    assert copied.status_code == 200, copied.text
    folder = root / "folders" / "red"
    assert copied.json()["folder"] == str(folder)
    files = {f["photo"]: f for f in copied.json()["files"]}
    assert sorted(files) == sorted(reds)
    for p in reds:  # r0.jpg is taken in the folder already: a new name, nothing overwritten
        assert files[p]["status"] in ("new", "renamed")
        assert os.path.dirname(files[p]["file"]) == str(folder)
        assert os.path.exists(p)  # the original stays where it was
        assert Path(files[p]["file"]).read_bytes() == Path(p).read_bytes()
    assert len(os.listdir(folder)) == 5 + 2


def test_bad_requests_are_one_line_and_change_nothing(filed, served) -> None:  # noqa: F811
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    cli("learn", "hand", str(root / "unsorted" / "g0.jpg"))
    before = snapshot(cli.library)
    for method, path, body, status, words in (
        ("get", "/api/suggest/hand", None, 400, "not made from keywords or folders"),
        ("get", "/api/suggest/nothing", None, 404, "no class named"),
        ("post", "/api/suggest/red", {"add": ["/etc/passwd"]}, 400, "image ids"),
        ("post", "/api/suggest/red", {}, 400, "nothing to learn"),
        ("post", "/api/suggest/red", {"add": [999999]}, 404, "999999"),
        ("post", "/api/file/red", {"mode": "copy"}, 400, "keyword"),
        ("get", "/suggest/hand", None, 400, "not made from keywords or folders"),
    ):
        kwargs = {"json": body} if body is not None else {}
        r = getattr(served.client, method)(path, **kwargs)
        assert r.status_code == status, (path, r.status_code, r.text)
        text = r.json()["error"] if path.startswith("/api/") else r.text
        assert words in text and "Traceback" not in text, (path, text)
    assert snapshot(cli.library) == before
