"""``finder serve``: the app over a real library, served by a real uvicorn on 127.0.0.1.

The API against the CLI's answers, the pages, thumbnails and photos, and the guards: a path
instead of an id, ``..``, an unknown id, no token, a wrong Host, a cross-origin or non-JSON POST:
each refused with a one-line JSON error, and the library unchanged.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from finder.library import Library
from tests.conftest import CLI, make_kinds, make_photo

TOKEN = "test-token-0123456789"


# -- a library of small photos, indexed once for the module --------------------------------
@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web") / "photos"
    make_kinds(root, 6)
    # a portrait photo stored landscape with EXIF orientation 6 (rotate 90° clockwise to show)
    im = Image.open(make_photo(root / "turned" / "src.jpg", "red", seed=77, size=(200, 100)))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(root / "turned" / "rotated.jpg", exif=exif)
    (root / "turned" / "src.jpg").unlink()
    Image.open(root / "red" / "0.jpg").save(root / "green" / "tiff-photo.tif")
    odd = os.fsencode(str(root / "blue")) + b"/odd\xff name\x07.jpg"
    with open(odd, "wb") as f:
        f.write((root / "blue" / "0.jpg").read_bytes())
    return root


@pytest.fixture(scope="module")
def library(photo_dir: Path, model_args: list[str], tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("weblib") / "library"
    CLI(lib)("index", str(photo_dir), *model_args, "--quiet")
    CLI(lib)("learn", "red", *(str(photo_dir / "red" / f"{i}.jpg") for i in range(2)))
    return lib


class Server:
    """The app under a real uvicorn in a thread of this process, on a free loopback port."""

    def __init__(self, library: Path) -> None:
        import uvicorn

        from finder.show.web.app import create_app
        from finder.show.web.server import bind

        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.app = create_app(library, token=TOKEN, port=self.port)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.base, params={"token": TOKEN}, timeout=60)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def raw(self, method: str, target: str, headers: dict | None = None, body: bytes = b""):
        """One request exactly as written (no URL normalisation): (status, parsed JSON body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in {"Host": f"127.0.0.1:{self.port}", **(headers or {})}.items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            return r.status, data, dict(r.getheaders())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(library: Path):
    s = Server(library)
    yield s
    s.stop()


def snapshot(library: Path) -> tuple:
    """What a refused request must not change: catalog rows, classes, examples, vector files."""
    db = sqlite3.connect(library / "catalog.db")
    try:
        tables = tuple(
            tuple(db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall())
            for t in ("images", "classes", "examples")
        )
    finally:
        db.close()
    files = tuple(
        sorted((p.name, p.stat().st_size) for p in (library / "vectors").iterdir() if p.is_file())
    )
    return tables, files


def catalog_ids(library: Path) -> dict[str, int]:
    """Image id of every indexed photo, by path relative to the photo folder's parent."""
    db = sqlite3.connect(library / "catalog.db")
    try:
        rows = db.execute("SELECT id, path FROM images WHERE status = 'ok'").fetchall()
    finally:
        db.close()
    return {os.fsdecode(bytes(p)): i for i, p in rows}


def id_of(library: Path, suffix: str) -> int:
    found = [i for p, i in catalog_ids(library).items() if p.endswith(suffix)]
    assert len(found) == 1, (suffix, found)
    return found[0]


def cli_json(library: Path, *args: str):
    return CLI(library).json(*args)


# -- the JSON API ---------------------------------------------------------------------------
def test_status_and_classes_are_the_cli_json(server: Server, library: Path) -> None:
    assert server.client.get("/api/status").json() == cli_json(library, "status")
    assert server.client.get("/api/classes").json() == cli_json(library, "classes")


def test_find_answers_as_the_cli_with_ids_and_thumbnails(server: Server, library: Path) -> None:
    paths = catalog_ids(library)
    got = server.client.get("/api/find/red").json()
    want = cli_json(library, "find", "red")
    assert [g["path"] for g in got] == [w["path"] for w in want]
    assert [g["probability"] for g in got] == pytest.approx([w["probability"] for w in want])
    for g in got:
        assert set(g) == {"id", "path", "probability", "thumb", "kind"} and g["kind"] == "photo"
        assert paths[g["path"]] == g["id"] and g["thumb"] == f"/thumb/{g['id']}"
    top = server.client.get("/api/find/red", params={"top": 7}).json()
    assert len(top) == 7
    probs = [t["probability"] for t in top]
    assert probs == sorted(probs, reverse=True)
    above = server.client.get("/api/find/red", params={"min_prob": 0.5}).json()
    assert all(a["probability"] >= 0.5 for a in above)
    assert [a["path"] for a in above] == [
        w["path"] for w in cli_json(library, "find", "red", "--min-prob", "0.5")
    ]


def test_similar_by_id(server: Server, library: Path) -> None:
    me = id_of(library, "blue/1.jpg")
    got = server.client.get(f"/api/similar/{me}", params={"top": 5}).json()
    assert len(got) == 5 and me not in [g["id"] for g in got]
    assert set(got[0]) == {"id", "path", "similarity", "thumb", "kind"}
    sims = [g["similarity"] for g in got]
    assert sims == sorted(sims, reverse=True)
    by_path = cli_json(library, "similar", str(Path(got[0]["path"]).parent / "1.jpg"), "--top", "5")
    assert [g["path"] for g in got] == [b["path"] for b in by_path]


def test_learn_by_ids_add_not_undo(server: Server, library: Path) -> None:
    green = [id_of(library, f"green/{i}.jpg") for i in range(3)]
    red = id_of(library, "red/3.jpg")
    r = server.client.post("/api/learn/greenish", json={"add": green[:2], "not": [red]})
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["name"] == "greenish" and record["examples"] == 2 and record["negatives"] == 1
    marks = server.client.get("/api/examples/greenish").json()
    assert {(m["id"], m["label"]) for m in marks} == {
        (green[0], "positive"),
        (green[1], "positive"),
        (red, "negative"),
    }
    listed = cli_json(library, "classes", "--examples", "greenish")
    assert [{"path": e["path"], "label": e["label"]} for e in listed] == [
        {"path": m["path"], "label": m["label"]} for m in marks
    ]
    assert {e["origin"] for e in listed} == {"top"}  # marks given on photos the page showed
    r = server.client.post("/api/learn/greenish", json={"undo": [red], "add": [green[2]]})
    assert r.json()["examples"] == 3 and r.json()["negatives"] == 0
    # the last example cannot be taken back: refused, nothing changed
    before = snapshot(library)
    r = server.client.post("/api/learn/greenish", json={"undo": green})
    assert r.status_code == 400 and "at least one example" in r.json()["error"]
    assert snapshot(library) == before


def test_a_click_reranks(server: Server, library: Path) -> None:
    blue = [id_of(library, f"blue/{i}.jpg") for i in range(6)]
    server.client.post("/api/learn/bluish", json={"add": blue[:1]})
    first = server.client.get("/api/find/bluish", params={"top": 20}).json()
    target = first[-1]["id"]  # the lowest of the top 20 ...
    server.client.post("/api/learn/bluish", json={"add": [target]})
    again = server.client.get("/api/find/bluish", params={"top": 20}).json()
    ranks = {g["id"]: k for k, g in enumerate(again)}
    assert ranks[target] < 19  # ... climbs once it is an example
    assert [g["probability"] for g in again] != [g["probability"] for g in first]


def test_a_click_on_the_page_teaches_and_answers_with_the_page(
    server: Server, library: Path
) -> None:
    green = [id_of(library, f"green/{i}.jpg") for i in range(4)]
    server.client.post("/api/learn/grassy", json={"add": green[:1]})
    r = server.client.post("/class/grassy", json={"add": [green[1]]}, params={"limit": 5})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"], r.text
    examples = r.text.split('id="examples"')[1].split('id="negatives"')[0]
    assert f'data-id="{green[1]}"' in examples  # the new mark, on the page it answers with
    # the strip is the page's to keep (the person's flips on it): a placeholder it ignores
    assert 'id="teach" class="teach" data-src="/strip/grassy"' in r.text
    grid = r.text.split('id="grid"')[1]
    assert len(re.findall(r'class="card" data-id="', grid)) == 5  # the page's limit
    listed = cli_json(library, "classes", "--examples", "grassy")
    assert [{"path": e["path"], "label": e["label"]} for e in listed] == [
        {"path": m["path"], "label": m["label"]}
        for m in server.client.get("/api/examples/grassy").json()
    ]
    assert {e["origin"] for e in listed} == {"top"}
    photo = server.client.post(
        f"/view/{green[2]}", json={"add": [green[2]]}, params={"class": "grassy"}
    )
    assert photo.status_code == 200 and 'data-act="undo" data-class="grassy"' in photo.text
    before = snapshot(library)
    for target, params, body in [
        ("/class/grassy", {}, {"add": ["/etc/passwd"]}),
        ("/class/grassy", {}, {"undo": [green[3]]}),  # not marked
        (f"/view/{green[3]}", {}, {"add": [green[3]]}),  # which class?
        ("/class/nope", {}, {"undo": [green[3]]}),
    ]:
        r = server.client.post(target, json=body, params=params)
        assert 400 <= r.status_code < 500 and 'id="error"' in r.text, (target, r.text)
    assert snapshot(library) == before


# -- thumbnails and photos -------------------------------------------------------------------
def test_thumbnail_is_cached_sharded_and_oriented(server: Server, library: Path) -> None:
    turned = id_of(library, "turned/rotated.jpg")
    r = server.client.get(f"/thumb/{turned}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    im = Image.open(__import__("io").BytesIO(r.content))
    assert im.size == (256, 512)  # stored 200x100, shown turned: portrait, short side 256
    cached = list((library / "thumbs").rglob(f"{turned}-*.jpg"))
    assert len(cached) == 1 and cached[0].parent.name == str(turned // 1000)
    assert cached[0].read_bytes() == r.content
    etag = r.headers["etag"]
    again = server.client.get(f"/thumb/{turned}", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_photo_is_the_file_or_a_jpeg_of_it(server: Server, library: Path, photo_dir) -> None:
    jpeg = id_of(library, "red/2.jpg")
    r = server.client.get(f"/photo/{jpeg}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (photo_dir / "red" / "2.jpg").read_bytes()
    tiff = id_of(library, "green/tiff-photo.tif")
    r = server.client.get(f"/photo/{tiff}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(__import__("io").BytesIO(r.content)).format == "JPEG"


def test_odd_file_names_survive(server: Server, library: Path) -> None:
    odd = next(i for p, i in catalog_ids(library).items() if "odd" in p)
    got = server.client.get(f"/api/similar/{odd}", params={"top": 30}).json()
    assert got  # the answer is JSON even though a path in the library is not UTF-8
    found = server.client.get("/api/find/red", params={"top": 30}).json()
    paths = [g["path"] for g in found]
    exact = [base64.b64decode(r["path_bytes"]) for r in found if "path_bytes" in r]
    assert any(p.endswith(b"odd\xff name\x07.jpg") for p in exact)
    assert "odd\\xff name\x07.jpg" in "".join(paths)  # valid UTF-8: the byte shown as \xff
    page = server.client.get(f"/view/{odd}").text
    assert "odd\\xff name\\a.jpg" in page  # escaped for a person to read
    assert "\x07" not in page


# -- pages -------------------------------------------------------------------------------------
def test_pages_render(server: Server, library: Path) -> None:
    home = server.client.get("/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    assert "default-src 'none'" in home.headers["content-security-policy"]
    assert 'href="/class/red"' in home.text
    size = len(cli_json(library, "find", "red"))  # the class's size: its default answer
    assert f'<a href="/class/red">red</a></td><td>{size}</td>' in home.text
    assert len(re.findall(r'class="card', home.text)) == cli_json(library, "status")["images"]

    page = server.client.get("/class/red").text
    examples, rest = page.split('id="grid"', 1)
    for i in range(2):  # the examples are shown apart, not in the ranking
        assert f'data-id="{id_of(library, f"red/{i}.jpg")}"' in examples.split('id="examples"')[1]
        assert f'data-id="{id_of(library, f"red/{i}.jpg")}"' not in rest
    assert 'id="cutoff"' in rest  # the cut-off is drawn in the grid
    scores = [float(s) for s in re.findall(r'<span class="score"[^>]*>([0-9.]+)<', rest)]
    assert scores == sorted(scores, reverse=True)

    photo = server.client.get(f"/view/{id_of(library, 'red/3.jpg')}").text
    assert "red/3.jpg</code>" in photo and 'id="grid"' in photo


def test_paging_reaches_every_match(server: Server, library: Path) -> None:
    n = cli_json(library, "status")["images"]
    seen: list[int] = []
    for offset in range(0, n + 10, 7):
        page = server.client.get("/class/red", params={"offset": offset, "limit": 7}).text
        grid = page.split('id="grid"', 1)[1]
        seen += [int(i) for i in re.findall(r'class="card" data-id="(\d+)"', grid)]
    marked = {m["id"] for m in server.client.get("/api/examples/red").json()}
    assert len(seen) == len(set(seen)) == n - len(marked)
    assert set(seen) | marked == set(catalog_ids(library).values())


def test_unknown_class_page_is_a_404_page(server: Server) -> None:
    r = server.client.get("/class/nope")
    assert r.status_code == 404 and "no class named" in r.text and "<html" in r.text


# -- the guards --------------------------------------------------------------------------------
JSON_TYPE = {"Content-Type": "application/json"}
HUGE_ID = b'{"add": [99999999999999999999999]}'
NESTED = b'{"add": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
TOO_LARGE = b'{"add": [' + b"1, " * (1 << 19) + b"1]}"  # 1.5 MiB
REFUSED = [
    # (method, target without token, extra headers, body, status)
    ("GET", "/photo/%2Fetc%2Fpasswd", {}, b"", 404),
    ("GET", "/photo//etc/passwd", {}, b"", 404),
    ("GET", "/thumb/red%2F0.jpg", {}, b"", 404),
    ("GET", "/thumb/0.jpg", {}, b"", 400),
    ("GET", "/photo/../../../../etc/passwd", {}, b"", 404),
    ("GET", "/photo/..", {}, b"", 400),
    ("GET", "/photo/%2e%2e%2f%2e%2e%2fetc%2fpasswd", {}, b"", 404),
    ("GET", "/static/../app.py", {}, b"", 404),
    ("GET", "/static/..%2fapp.py", {}, b"", 404),
    ("GET", "/photo/987654", {}, b"", 404),
    ("GET", "/thumb/987654", {}, b"", 404),
    ("GET", "/api/similar/987654", {}, b"", 404),
    ("GET", "/api/similar/-1", {}, b"", 400),
    ("GET", "/api/find/nope", {}, b"", 404),
    ("GET", "/api/find/red?top=0", {}, b"", 400),
    ("GET", "/api/find/red?min_prob=2", {}, b"", 400),
    ("GET", "/api/find/red?top=x", {}, b"", 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b'{"add": ["/etc/x"]}', 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b'{"add": [987654]}', 404),
    (
        "POST",
        "/api/learn/red",
        {"Content-Type": "application/json"},
        b'{"add": [1], "not": [1]}',
        400,
    ),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b"{not json", 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b'{"delete": [1]}', 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b"[1, 2]", 400),
    ("POST", "/api/learn/new", {"Content-Type": "application/json"}, b'{"not": [1]}', 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b'{"undo": [3, 3]}', 400),
    ("POST", "/api/learn/nope", {"Content-Type": "application/json"}, b'{"undo": [3]}', 404),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b'{"add": [true]}', 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, HUGE_ID, 400),
    ("POST", "/api/learn/red", {"Content-Type": "application/json"}, b'{"not": [1e400]}', 400),
    pytest.param("POST", "/api/learn/red", JSON_TYPE, b"[" * 100_000, 400, id="deep"),
    pytest.param("POST", "/api/learn/red", JSON_TYPE, NESTED, 400, id="nested"),
    pytest.param("POST", "/api/learn/red", JSON_TYPE, TOO_LARGE, 413, id="too-large"),
    ("POST", "/api/learn/red", {"Content-Type": "text/plain"}, b'{"add": [1]}', 415),
    ("POST", "/api/learn/red", {}, b'{"add": [1]}', 415),
    (
        "POST",
        "/api/learn/red",
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        b'{"add": [1]}',
        403,
    ),
    (
        "POST",
        "/api/learn/red",
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        b'{"add": [1]}',
        403,
    ),
    ("DELETE", "/api/learn/red", {}, b"", 405),
    ("PUT", "/api/learn/red", {"Content-Type": "application/json"}, b'{"add": [1]}', 405),
    ("GET", "/api/learn/red", {}, b"", 405),
]


@pytest.mark.parametrize(("method", "target", "headers", "body", "status"), REFUSED)
def test_refused_with_one_line_and_nothing_changed(
    server: Server, library: Path, method, target, headers, body, status
) -> None:
    before = snapshot(library)
    sep = "&" if "?" in target else "?"
    code, data, got_headers = server.raw(method, f"{target}{sep}token={TOKEN}", headers, body)
    assert code == status, data
    assert got_headers["content-type"] == "application/json"
    error = json.loads(data)["error"]
    assert error and "\n" not in error and "Traceback" not in error
    assert snapshot(library) == before


def test_a_strip_of_100000_ids_fits_in_a_body(server: Server, library: Path) -> None:
    """The body limit (1 MiB) holds "all above here" of 100,000 photos of a library of
    millions (ids of 7 digits): read whole, then judged by its ids."""
    ids = ", ".join(str(i) for i in range(1_000_000, 1_100_000))
    body = f'{{"add": [{ids}]}}'.encode()
    assert 800_000 < len(body) < 1 << 20
    code, data, _ = server.raw(
        "POST", f"/api/learn/red?token={TOKEN}", {"Content-Type": "application/json"}, body
    )
    assert code == 404 and "1000000" in json.loads(data)["error"]  # read, then no such image
    reds = [id_of(library, f"red/{i}.jpg") for i in range(3)]
    wide = ", ".join(f"{reds[k % 3]:>7}" for k in range(100_000))  # as wide as 7-digit ids
    body = f'{{"add": [{wide}]}}'.encode()
    assert 800_000 < len(body) < 1 << 20
    code, data, _ = server.raw(
        "POST", f"/api/learn/strip?token={TOKEN}", {"Content-Type": "application/json"}, body
    )
    try:
        assert code == 200, data
        assert json.loads(data)["examples"] == 3
    finally:
        CLI(library)("forget", "strip", ok=False)
    code, page, headers = server.raw("POST", f"/class/red?token={TOKEN}", JSON_TYPE, TOO_LARGE)
    assert code == 413 and b"larger than" in page  # the page's teaching too


def test_a_body_past_the_limit_without_a_length_is_cut_short(server: Server) -> None:
    """A chunked body (no Content-Length) is refused as soon as it passes 1 MiB."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("POST", f"/api/learn/red?token={TOKEN}", skip_host=True)
        conn.putheader("Host", f"127.0.0.1:{server.port}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"1, " * 20_000
        try:
            for _ in range(30):  # 1.8 MB in all, if the server read it all
                conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest came
        r = conn.getresponse()
        assert r.status == 413 and "larger than" in json.loads(r.read())["error"]
    finally:
        conn.close()


# (method, target without token, JSON body or None, the field the API must name)
BAD_ARGUMENTS = [
    ("GET", "/api/find/red?top=0", None, "top"),
    ("GET", "/api/find/red?top=x", None, "top"),
    ("GET", "/api/find/red?min_prob=2", None, "min_prob"),  # refused by the library itself
    ("GET", "/api/find/red?min_prob=-0.5", None, "min_prob"),
    ("GET", "/api/find/red?min_prob=x", None, "min_prob"),
    ("GET", "/api/similar/1?top=0", None, "top"),
    ("GET", "/api/similar/1?top=many", None, "top"),
    ("GET", "/api/review/red?n=0", None, "n"),
    ("GET", "/api/review/red?n=x", None, "n"),
    ("GET", "/?offset=-1", None, "offset"),
    ("GET", "/class/red?limit=0", None, "limit"),
    ("POST", "/api/learn/red", {"add": ["/etc/passwd"]}, "add"),
    ("POST", "/api/learn/red", {"not": "1"}, "not"),
    ("POST", "/api/learn/red", {"undo": [-1]}, "undo"),
    ("POST", "/api/learn/red", {"delete": [1]}, "delete"),
]


@pytest.mark.parametrize(("method", "target", "body", "field"), BAD_ARGUMENTS)
def test_a_bad_argument_is_named_as_the_api_names_it(
    server: Server, method: str, target: str, body, field: str
) -> None:
    sep = "&" if "?" in target else "?"
    headers = {"Content-Type": "application/json"} if body is not None else {}
    data = json.dumps(body).encode() if body is not None else b""
    code, answer, _ = server.raw(method, f"{target}{sep}token={TOKEN}", headers, data)
    assert 400 <= code < 500, answer
    if target.startswith("/api/"):
        error = json.loads(answer)["error"]
    else:  # a page: the same line in the error page
        error = re.search(rb'id="error"[^>]*>([^<]*)<', answer).group(1).decode()
    assert re.search(rf"\b{field}\b", error), error
    assert "--" not in error, error  # the command line's flags are not the API's words


ROUTES = ["/", "/class/red", "/view/1", "/api/status", "/api/classes", "/api/find/red"]
ROUTES += ["/api/similar/1", "/thumb/1", "/photo/1", "/static/app.js", "/api/progress"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_needs_the_token(server: Server, route: str) -> None:
    code, data, _ = server.raw("GET", route)
    assert code == 403 and "token" in json.loads(data)["error"]
    code, data, _ = server.raw("GET", route + "?token=wrong")
    assert code == 403 and "wrong access token" in json.loads(data)["error"]
    code, _, _ = server.raw("GET", route, {"Authorization": f"token {TOKEN}"})
    assert code == 200


def test_token_then_cookie(server: Server) -> None:
    with httpx.Client(base_url=server.base) as browser:
        first = browser.get("/", params={"token": TOKEN})
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert f"finder-token-{server.port}={TOKEN}" in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/api/status").status_code == 200  # the cookie alone
        browser.cookies.clear()
        assert browser.get("/api/status").status_code == 403


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "10.0.0.1", ""]
)
def test_wrong_host_is_refused(server: Server, library: Path, host: str) -> None:
    before = snapshot(library)
    for method, target, body in [
        ("GET", "/api/status", b""),
        ("POST", "/api/learn/red", b'{"add": [1]}'),
    ]:
        code, data, _ = server.raw(
            method,
            f"{target}?token={TOKEN}",
            {"Host": host, "Content-Type": "application/json"},
            body,
        )
        assert code == 403 and "Host" in json.loads(data)["error"]
    assert snapshot(library) == before


def test_loopback_names_are_accepted(server: Server) -> None:
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        code, _, _ = server.raw("GET", f"/api/status?token={TOKEN}", {"Host": host})
        assert code == 200, host
    same = {"Content-Type": "application/json", "Origin": f"http://localhost:{server.port}"}
    same["Host"] = f"localhost:{server.port}"
    code, data, _ = server.raw("POST", f"/api/learn/red?token={TOKEN}", same, b'{"undo": []}')
    assert code == 400 and "nothing to learn" in json.loads(data)["error"]  # past the guard


def test_listening_on_every_address_still_checks_the_host(library: Path) -> None:
    """``--host 0.0.0.0``: the Host must still name this machine (its host name, fully
    qualified name, an interface's address, a loopback name) or a name given with
    ``--allow-host``; any other (DNS rebinding) is refused."""
    import socket

    import psutil
    from starlette.testclient import TestClient

    from finder.show.web.app import create_app

    addresses = [
        a.address.split("%")[0]
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    ]
    ours = ["127.0.0.1", "localhost", "[::1]", socket.gethostname(), socket.getfqdn()]
    ours += [f"[{a}]" if ":" in a else a for a in addresses]
    for bound, allowed in (("0.0.0.0", ()), ("::", ["Photos.Example:8765"])):
        app = create_app(library, token=TOKEN, port=8765, host=bound, allow_hosts=allowed)
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:

            def status(host: str) -> int:
                headers = {"Host": host}
                return client.get(
                    "/api/status", params={"token": TOKEN}, headers=headers
                ).status_code

            for host in ours:
                assert status(f"{host}:8765") == 200, (bound, host)
            for host in ["evil.example", "evil.example:8765", "192.0.2.1", "photos.example.evil"]:
                assert status(host) == 403, (bound, host)
            assert status("photos.example:8765") == (200 if allowed else 403)
            r = client.get("/api/status", params={"token": TOKEN}, headers={"Host": "evil.example"})
            assert "--allow-host" in r.json()["error"]


def test_serve_allow_host(library: Path) -> None:
    """``finder serve --allow-host NAME`` (on loopback here): NAME is let in, others are not;
    a NAME that names no host is refused before anything starts."""
    from tests.conftest import run_finder

    bad = run_finder("serve", "--library", str(library), "--no-open", "--allow-host", "a b")
    assert bad.returncode == 2 and b"--allow-host" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and bad.stdout == b""
    proc = subprocess.Popen(
        [sys.executable, "-m", "finder", "serve", "--library", str(library), "--no-open"]
        + ["--port", "0", "--allow-host", "photos.example", "--allow-host", "nas.local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        port = int(re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=.*", url).group(1))
        api = url.replace("/?", "/api/status?")
        for host, code in [("photos.example", 200), ("NAS.local", 200), ("evil.example", 403)]:
            r = httpx.get(api, headers={"Host": f"{host}:{port}"}, timeout=60)
            assert r.status_code == code, (host, r.text)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


# -- the library beside the server ----------------------------------------------------------
def test_serve_does_not_block_an_index_run(server: Server, library: Path, photo_dir) -> None:
    extra = photo_dir.parent / "later"
    make_photo(extra / "late.jpg", "blue", seed=123)
    before = server.client.get("/api/status").json()["images"]
    server.client.get("/api/find/red")  # the server has its vectors open
    model = CLI(library)  # the library's own backbone: no flags needed
    model("index", str(extra), "--quiet")
    time.sleep(1.1)  # the app looks for new vectors at most once a second
    assert server.client.get("/api/status").json()["images"] == before + 1
    late = id_of(library, "later/late.jpg")
    assert late in [g["id"] for g in server.client.get("/api/find/red", params={"top": 100}).json()]
    assert server.client.get(f"/api/similar/{late}", params={"top": 3}).status_code == 200
    progress = server.client.get("/api/progress").json()
    assert progress["phase"] == "done" and progress["running"] is False


def test_index_thumbnails_and_sweep(library: Path, photo_dir: Path) -> None:
    CLI(library)("index", str(photo_dir), "--thumbnails", "--quiet")
    ids = catalog_ids(library)
    thumbs = {p.name.split("-")[0] for p in (library / "thumbs").rglob("*.jpg")}
    assert {str(i) for i in ids.values()} <= thumbs  # every indexed image has its thumbnail
    # an image that changes gets a new thumbnail; one that leaves loses its own
    changed, gone = photo_dir / "blue" / "5.jpg", photo_dir / "green" / "5.jpg"
    changed_id, gone_id = ids[str(changed)], ids[str(gone)]
    make_photo(changed, "red", seed=999)
    gone_bytes = gone.read_bytes()
    gone.unlink()
    try:
        CLI(library)("index", str(photo_dir), "--quiet")
        assert not list((library / "thumbs").rglob(f"{gone_id}-*.jpg"))
        assert not list((library / "thumbs").rglob(f"{changed_id}-*.jpg"))
        with Library(library) as lib:
            made = lib.thumbnail(changed_id)
        assert made.is_file() and made.name.startswith(f"{changed_id}-")
    finally:
        gone.write_bytes(gone_bytes)


def test_progress_file_tells_a_live_run(tmp_path: Path) -> None:
    from finder.store.progress import ProgressFile, read

    assert read(tmp_path) is None
    ProgressFile(tmp_path).publish("embed", 3, 10, "/photos")
    now = read(tmp_path)
    assert now is not None and now["running"] and (now["done"], now["total"]) == (3, 10)
    data = json.loads((tmp_path / "progress.json").read_text())
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    data["pid"] = int(dead.stdout)
    (tmp_path / "progress.json").write_text(json.dumps(data))
    assert read(tmp_path)["running"] is False  # its process is gone


# -- the command -------------------------------------------------------------------------------
def test_finder_serve_prints_the_url_first_and_stops_on_ctrl_c(library: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "finder",
            "serve",
            "--library",
            str(library),
            "--no-open",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]{20,})", url)
        assert m, url
        r = httpx.get(url.replace("/?", "/api/status?"), timeout=60)
        assert r.status_code == 200 and r.json()["images"] > 0
        maps = Path(f"/proc/{proc.pid}/maps")
        if maps.exists():  # serving embeds nothing: TensorFlow is never loaded
            assert "tensorflow" not in maps.read_text()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_port_in_use_in_one_line(library: Path, server: Server) -> None:
    from tests.conftest import run_finder

    r = run_finder("serve", "--library", str(library), "--no-open", "--port", str(server.port))
    assert r.returncode == 2
    assert r.stderr.decode().strip().splitlines() == [
        f"finder: error: port {server.port} is in use; pick another with --port"
    ]


def test_serve_warns_off_loopback(library: Path) -> None:
    from tests.conftest import run_finder

    # a documentation address (RFC 5737): never this machine's, so nothing is ever served
    r = run_finder("serve", "--library", str(library), "--no-open", "--host", "192.0.2.1")
    err = r.stderr.decode()
    assert "warning: listening on 192.0.2.1, not loopback" in err
    assert r.returncode == 2 and "cannot listen on 192.0.2.1" in err and "Traceback" not in err


@pytest.mark.skipif(
    not hasattr(Library, "review"),
    reason="Library.review (find NAME --review N, the teaching issue) does not exist yet",
)
def test_review_strip(server: Server) -> None:
    from finder.show.web.app import REVIEW

    got = server.client.get("/api/review/red", params={"n": REVIEW}).json()
    assert 0 < len(got) <= REVIEW and set(got[0]) == {"id", "path", "probability", "thumb", "kind"}
    marked = {m["id"] for m in server.client.get("/api/examples/red").json()}
    assert not marked & {g["id"] for g in got}
    page = server.client.get("/class/red").text  # strips took the review row's place
    assert 'id="teach" class="teach" data-src="/strip/red"' in page
    strip = server.client.get("/review/red").text  # what the class page fetches into it
    for g in got:
        assert f'data-id="{g["id"]}"' in strip.split('id="review"')[1]


def test_similar_vectors_unchanged_by_serving(library: Path, server: Server) -> None:
    """The app opens the vectors read-only: the store's files are never written by it."""
    files = snapshot(library)[1]
    for i in list(catalog_ids(library).values())[:5]:
        server.client.get(f"/api/similar/{i}")
    assert snapshot(library)[1] == files
    assert np.isfinite([g["similarity"] for g in server.client.get("/api/similar/1").json()]).all()


def test_an_empty_library_is_served_and_left_alone(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    s = Server(empty)
    try:
        home = s.client.get("/")
        assert home.status_code == 200 and "All photos <small>0</small>" in home.text
        assert s.client.get("/api/status").json()["images"] == 0
        assert s.client.get("/api/classes").json() == []
        assert s.client.get("/api/find/cat").status_code == 404
        assert s.client.get("/thumb/1").status_code == 404
        r = s.client.post("/api/learn/cat", json={"add": [1]})
        assert r.status_code == 404 and "no indexed image" in r.json()["error"]
    finally:
        s.stop()
    assert not empty.exists()  # looking created nothing


def test_a_strip_through_the_api_and_the_page(server: Server, library: Path) -> None:
    """Issue 23: ``/api/strip`` gives unmarked photos with finder's guess and the random draws'
    chances; one POST teaches the whole strip (one retraining) and answers with the next strip
    and the estimate; ``/strip`` is the page's strip, pre-set to the guesses; ``POST /strip``
    answers with the class page, the next strip in it, and takes a strip back (undo)."""
    blue = [id_of(library, f"blue/{i}.jpg") for i in range(6)]
    server.client.post("/api/learn/stripy", json={"add": blue[:1]})
    got = server.client.get("/api/strip/stripy", params={"n": 6}).json()
    photos = got["photos"]
    assert got["name"] == "stripy" and got["strip"] == 0 and len(photos) == 6
    assert {"id", "path", "probability", "thumb", "kind", "guess", "random", "chance"} <= set(
        photos[0]
    )
    assert sum(p["random"] for p in photos) == 2 and blue[0] not in {p["id"] for p in photos}
    assert all((p["chance"] is not None) == p["random"] for p in photos)
    threshold = server.client.get("/api/classes").json()
    cut = next(c["threshold"] for c in threshold if c["name"] == "stripy")
    assert all(p["guess"] == (p["probability"] >= cut) for p in photos)
    page = server.client.get("/strip/stripy", params={"n": 6}).text
    tile = r'class="verdict (is-yes|is-no)[^"]*" data-id="(\d+)" data-guess="(\d)"'
    shown = re.findall(tile, page)
    assert [int(i) for _, i, _ in shown] == [p["id"] for p in photos]  # the same strip again
    for (kind, _, guess), p in zip(shown, photos, strict=True):
        assert (kind == "is-yes") == (guess == "1") == p["guess"]
    ids = [p["id"] for p in photos]
    unsure = ids[-1]  # "not sure": teaches nothing, never offered again
    add = [i for i in ids[:-1] if i in blue]
    not_ = [i for i in ids[:-1] if i not in blue]
    body = {"add": add, "not": not_, "skip": [unsure]}
    r = server.client.post("/api/strip/stripy", params={"n": 6}, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"class", "estimate", "next"} and out["estimate"] is None  # 2 draws
    assert out["class"]["examples"] == 1 + len(add) and out["class"]["negatives"] == len(not_)
    assert out["next"]["strip"] == 1 and not set(ids) & {p["id"] for p in out["next"]["photos"]}
    marked = {m["id"] for m in server.client.get("/api/examples/stripy").json()}
    assert set(ids) - {unsure} <= marked and unsure not in marked
    body = {"undo": add + not_, "unskip": [unsure]}
    r = server.client.post("/strip/stripy", params={"n": 4, "limit": 5}, json=body)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"], r.text
    teach = r.text.split('id="teach"')[1].split("</section>")[0]
    assert len(re.findall(r'class="verdict ', teach)) == 4  # the next strip comes with it
    assert 'id="estimate"' in r.text
    marked = {m["id"] for m in server.client.get("/api/examples/stripy").json()}
    assert marked == {blue[0]}  # taken back, whole
    bad = server.client.get("/api/strip/stripy", params={"n": 0})
    assert bad.status_code == 400 and "n must be between" in bad.json()["error"]
    bad = server.client.post("/api/strip/stripy", json={"skip": [10**12]})
    assert bad.status_code == 400 and "not offered in a strip" in bad.json()["error"]
