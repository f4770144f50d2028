"""Every JSON output is read by a strict parser: a path that is not UTF-8 comes as valid UTF-8
text (its other bytes shown as ``\\xff``) with its exact bytes beside it, base64
(``path_bytes``); a UTF-8 path is exact and alone. The CLI's ``--json`` of every command that
prints paths, and the web API, on a real library whose photos (one in a folder) and failures have
names that are not UTF-8."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from finder.show.as_json import dumps
from tests.conftest import CLI, make_photo


def fs(raw: bytes) -> Path:
    return Path(os.fsdecode(raw))


@pytest.fixture(scope="module")
def odd_lib(tmp_path_factory, model_args: list[str]):
    """Photos named in UTF-8 and not, a copy of one (a dupes group), a file that fails; class
    "r" learned from two photos."""
    tmp = tmp_path_factory.mktemp("jsonpaths")
    root = tmp / "photos"
    for i in range(4):
        make_photo(root / f"red{i}.jpg", "red", seed=i)
    for i in range(3):
        make_photo(root / f"blue{i}.jpg", "blue", seed=10 + i)
    odd_dir = os.fsencode(root) + b"/caf\xe9"
    odd = odd_dir + b"/odd\xff.jpg"
    make_photo(fs(odd), "red", seed=7)
    copy = odd_dir + b"/copy\xfe.jpg"
    shutil.copyfile(odd, copy)
    broken = os.fsencode(root) + b"/broken\xff.jpg"
    with open(broken, "wb") as f:
        f.write(b"not a photo at all")
    library = tmp / "library"
    cli = CLI(library)
    cli("index", str(root), *model_args, "--quiet")
    cli("learn", "r", str(root / "red0.jpg"), str(root / "red1.jpg"))
    return cli, root, {"odd": odd, "copy": copy, "broken": broken}


def strict(text: bytes) -> Any:
    """``text`` parsed as a strict parser would: UTF-8, and no string holding a lone surrogate
    (Python's json reads ``\\udcff`` escapes; UTF-8 cannot hold what they make)."""
    data = json.loads(text.decode("utf-8"))

    def walk(value: Any) -> None:
        if isinstance(value, str):
            value.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(data)
    return data


def exact(row: dict, field: str = "path") -> bytes:
    """The file-system bytes of a row's path: ``FIELD_bytes`` when given, else the text."""
    if field + "_bytes" in row:
        raw = base64.b64decode(row[field + "_bytes"])
        assert row[field] == raw.decode("utf-8", "backslashreplace")  # shown as \xff
        return raw
    return row[field].encode("utf-8")


def json_of(cli: CLI, *args: str) -> Any:
    return strict(cli(*args, "--json").stdout_bytes)


def test_every_cli_json_output_is_strict_and_exact(odd_lib) -> None:
    cli, root, raw = odd_lib
    found = json_of(cli, "find", "r", "--top", "20")
    assert raw["odd"] in {exact(r) for r in found}
    assert all(
        "path_bytes" not in r for r in found if b"\xff" not in exact(r) and b"\xfe" not in exact(r)
    )
    assert all(os.path.isfile(exact(r)) for r in found)

    similar = json_of(cli, "similar", os.fsdecode(raw["odd"]), "--top", "20")
    assert raw["copy"] in {exact(r) for r in similar}

    review = json_of(cli, "find", "r", "--review", "8")
    assert all(os.path.isfile(exact(r)) for r in review) and review

    cli("learn", "r", "--add", os.fsdecode(raw["odd"]))
    examples = json_of(cli, "classes", "--examples", "r")
    assert raw["odd"] in {exact(r) for r in examples}

    groups = json_of(cli, "dupes")["groups"]
    group = next(g for g in groups if g["kind"] == "identical")
    assert {exact(f) for f in group["files"]} == {raw["odd"], raw["copy"]}
    assert exact(group, "keep") in {raw["odd"], raw["copy"]}

    failed = json_of(cli, "status", "--failed")
    assert [exact(r) for r in failed["failures"]] == [raw["broken"]]

    tagged = json_of(cli, "tag", "r", "--dry-run", "--top", "20")
    photo = next(t for t in tagged if exact(t, "photo") == raw["odd"])
    assert exact(photo, "sidecar") == raw["odd"] + b".xmp"


def test_the_web_api_is_strict_and_exact(odd_lib) -> None:
    from starlette.testclient import TestClient

    from finder.show.web.app import create_app

    cli, _, raw = odd_lib
    app = create_app(cli.library, token="t0ken", port=8765)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:

        def get(url: str, **params: Any) -> Any:
            r = client.get(url, params={"token": "t0ken", **params})
            assert r.status_code == 200, r.text
            return strict(r.content)

        found = get("/api/find/r", top=20)
        odd = next(r for r in found if exact(r) == raw["odd"])
        similar = get(f"/api/similar/{odd['id']}", top=20)
        assert raw["copy"] in {exact(r) for r in similar}
        assert all(os.path.isfile(exact(r)) for r in get("/api/review/r", n=5))
        assert raw["odd"] in {exact(r) for r in get("/api/examples/r")}


def test_dumps_leaves_utf8_alone_and_adds_bytes_only_where_needed() -> None:
    text = dumps({"path": "/photos/日本 ü\n.jpg", "n": 1, "rows": [{"path": "/a/\udcff"}]})
    data = strict(text.encode())
    assert data["path"] == "/photos/日本 ü\n.jpg" and "path_bytes" not in data
    assert data["rows"] == [
        {"path": "/a/\\xff", "path_bytes": base64.b64encode(b"/a/\xff").decode()}
    ]
