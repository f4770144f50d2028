"""A class's life over the web API (issue 24, items 15 and 16): ``POST /api/rename/NAME``,
``/api/forget/NAME`` (kept 30 days), ``GET /api/forgotten``, ``POST /api/restore/NAME`` and
``/api/drop/NAME`` (marks taken back by image id, or by the key ``/api/examples`` gives each
mark, a photo outside the library's too), against a real library served by a real uvicorn,
checked against the CLI's answers. Errors are one line naming the API's fields, with the status
each carries, and the library is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CLI, make_photo
from tests.show.test_web import TOKEN, Server, id_of, snapshot


@pytest.fixture
def library(tmp_path: Path, photo_tree: Path, model_args: list[str]) -> Path:
    lib = tmp_path / "library"
    cli = CLI(lib)
    cli("index", str(photo_tree), *model_args, "--quiet")
    outside = make_photo(tmp_path / "elsewhere" / "red-outside.jpg", "red", seed=71)
    red = [str(photo_tree / "red" / f"{i}.jpg") for i in range(3)]
    cli("learn", "red", *red, str(outside), "--not", str(photo_tree / "blue" / "0.jpg"))
    cli("learn", "blue", str(photo_tree / "blue" / "1.jpg"), str(photo_tree / "blue" / "2.jpg"))
    return lib


@pytest.fixture
def server(library: Path):
    s = Server(library)
    yield s
    s.stop()


def post(server: Server, path: str, body=None) -> tuple[int, object]:
    data = b"" if body is None else json.dumps(body).encode()
    code, answer, headers = server.raw(
        "POST", f"{path}?token={TOKEN}", {"Content-Type": "application/json"}, data
    )
    assert headers["content-type"] == "application/json"
    return code, json.loads(answer)


def refused(server: Server, library: Path, path: str, body, status: int, *words: str) -> str:
    """``POST path body`` is refused with ``status`` and one line holding ``words``, and the
    library is left as it was."""
    before = snapshot(library), CLI(library).json("classes", "--forgotten")
    code, answer = post(server, path, body)
    assert code == status, answer
    error = answer["error"]
    assert error and "\n" not in error and "Traceback" not in error
    assert "--" not in error, error  # the API's words, not the command line's
    for w in words:
        assert w in error, error
    assert (snapshot(library), CLI(library).json("classes", "--forgotten")) == before
    return error


def test_drop_takes_marks_back_by_id_and_by_key(server: Server, library: Path) -> None:
    cli = CLI(library)
    marks = server.client.get("/api/examples/red").json()
    assert len(marks) == 5 and all(len(m["key"]) == 16 for m in marks)
    assert len({m["key"] for m in marks}) == 5
    outside = next(m for m in marks if m["id"] is None)
    assert outside["path"].endswith("red-outside.jpg")
    red2, blue0 = id_of(library, "red/2.jpg"), id_of(library, "blue/0.jpg")

    code, record = post(server, "/api/drop/red", {"ids": [red2, blue0]})
    assert code == 200 and (record["examples"], record["negatives"]) == (3, 0)
    listed = cli.json("classes")[1]  # the CLI sees what the API did (and adds the estimate)
    assert record == {k: v for k, v in listed.items() if k != "estimate"}
    code, record = post(server, "/api/drop/red", {"marks": [outside["key"]]})
    assert code == 200 and record["examples"] == 2
    left = [e["path"] for e in cli.json("classes", "--examples", "red")]
    assert [p.rsplit("/", 2)[-2:] for p in left] == [["red", "0.jpg"], ["red", "1.jpg"]]
    # the same as learning those marks afresh would give
    assert server.client.get("/api/find/red").status_code == 200

    red0, red1 = id_of(library, "red/0.jpg"), id_of(library, "red/1.jpg")
    refused(server, library, "/api/drop/red", {"ids": [red2]}, 400, "ids", "not marked")
    refused(server, library, "/api/drop/red", {"marks": ["0" * 16]}, 400, "marks", "not a mark")
    refused(server, library, "/api/drop/red", {"ids": [red0, red1]}, 400, "every example")
    refused(server, library, "/api/drop/red", {}, 400, "nothing to take back")
    refused(server, library, "/api/drop/red", {"ids": ["/etc/passwd"]}, 400, "ids")
    refused(server, library, "/api/drop/red", {"marks": [1]}, 400, "marks")
    refused(server, library, "/api/drop/red", {"paths": ["x"]}, 400, "unknown field 'paths'")
    refused(server, library, "/api/drop/red", [1], 400, "JSON object")
    refused(server, library, "/api/drop/green", {"ids": [red0]}, 404, "no class named 'green'")


def test_rename(server: Server, library: Path) -> None:
    cli = CLI(library)
    before = server.client.get("/api/find/red").json()
    code, record = post(server, "/api/rename/red", {"to": "  crimson  "})
    assert code == 200 and record["name"] == "crimson"
    assert server.client.get("/api/find/crimson").json() == before
    assert [c["name"] for c in cli.json("classes")] == ["blue", "crimson"]
    assert server.client.get("/api/find/red").status_code == 404

    refused(server, library, "/api/rename/crimson", {"to": "blue"}, 409, "'blue' exists already")
    refused(server, library, "/api/rename/red", {"to": "x"}, 404, "no class named 'red'")
    refused(server, library, "/api/rename/crimson", {}, 400, "to must be the new name")
    refused(server, library, "/api/rename/crimson", {"to": 3}, 400, "to must be")
    refused(server, library, "/api/rename/crimson", {"to": "a\x1bb"}, 400, "control characters")
    refused(server, library, "/api/rename/crimson", {"to": "   "}, 400, "needs a name")
    refused(server, library, "/api/rename/crimson", {"name": "x"}, 400, "unknown field 'name'")


def test_forget_restore(server: Server, library: Path, photo_tree: Path) -> None:
    cli = CLI(library)
    learned = server.client.get("/api/classes").json()
    red = next(c for c in learned if c["name"] == "red")
    red = {k: v for k, v in red.items() if k != "estimate"}  # /api/classes adds it; a record not
    assert server.client.get("/api/forgotten").json() == []

    code, kept = post(server, "/api/forget/red")  # no body: none needed
    assert code == 200 and (kept["name"], kept["examples"], kept["negatives"]) == ("red", 4, 1)
    assert 29.9 * 86400 < kept["kept_until"] - kept["forgotten_at"] <= 30 * 86400
    assert [c["name"] for c in server.client.get("/api/classes").json()] == ["blue"]
    assert server.client.get("/api/find/red").status_code == 404
    assert server.client.get("/api/forgotten").json() == [kept]
    assert cli.json("classes", "--forgotten") == [kept]  # the CLI's view, the same
    assert "red" not in server.client.get("/").text.split("Forgotten")[0].split("Classes")[-1]

    code, record = post(server, "/api/restore/red", {})
    assert code == 200 and record == red
    assert server.client.get("/api/classes").json() == learned
    assert server.client.get("/api/forgotten").json() == []
    refused(server, library, "/api/restore/red", {}, 409, "'red' is not forgotten")
    refused(server, library, "/api/restore/green", {}, 404, "no forgotten class named 'green'")
    refused(server, library, "/api/forget/green", {}, 404, "no class named 'green'")
    refused(server, library, "/api/forget/red", {"yes": True}, 400, "unknown field 'yes'")

    # learned anew after it was forgotten: restore refuses until the new one is renamed
    assert post(server, "/api/forget/red")[0] == 200
    cli("learn", "red", str(photo_tree / "red" / "3.jpg"))
    error = refused(server, library, "/api/restore/red", {}, 409, "learned anew")
    assert "finder" not in error  # no command to type on a page
    assert post(server, "/api/rename/red", {"to": "red 2"})[0] == 200
    code, record = post(server, "/api/restore/red")
    assert code == 200 and record == red
    assert sorted(c["name"] for c in cli.json("classes")) == ["blue", "red", "red 2"]
