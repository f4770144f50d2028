"""One writer: ``finder serve --watch`` serves the page and follows the roots the library indexed,
in one process that holds the library; a second writer (``finder index ROOT`` from a terminal)
gets one line naming that process (the owner record: pid, command) and what to do. Real
processes, real files, the real model; every wait bounded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from finder.library import Library
from finder.store import owner
from tests.conftest import CLI, REPO, make_kinds, make_photo, run_finder
from tests.test_watch import Child, Watcher, nearest, status


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_kinds(tmp_path / "photos", 3, kinds=("red", "blue"))


def second_writer(library: Path, *args: str) -> tuple[int, list[str]]:
    r = run_finder(*args, "--library", str(library))
    return r.returncode, r.stderr.decode().strip().splitlines()


def test_a_second_writer_is_told_who_follows_the_library(tmp_path, tree, model_args) -> None:
    library = tmp_path / "lib"
    other = tmp_path / "other"
    make_photo(other / "x.jpg", "green", seed=5)
    with Watcher.index(library, [tree], model_args) as w:
        record = owner.read(library)
        assert record["pid"] == w.proc.pid and record["following"] == [str(tree)]
        assert record["command"].startswith("finder index ")

        code, err = second_writer(library, "index", str(tree / "red"))  # already followed
        assert code == 0 and len(err) == 1, err
        assert err[0].startswith("finder: nothing to do:") and f"pid {w.proc.pid}" in err[0]

        code, err = second_writer(library, "index", str(other))
        assert code == 1 and len(err) == 1, err
        assert f"pid {w.proc.pid}" in err[0] and "finder index" in err[0]
        assert f"`finder index --watch {tree} {other}`" in err[0]

        code, err = second_writer(library, "repair")  # no folder named: stop it first
        assert code == 1 and err == [f"finder: error: {err[0][len('finder: error: ') :]}"]
        assert f"pid {w.proc.pid}" in err[0] and "stop it (Ctrl-C) first" in err[0]
        assert status(library)["images"] == 6  # nothing was written by them
        assert w.stop() == 0
    assert not (library / owner.FILE).exists()  # the record goes with the lock


def test_a_plain_run_holding_the_library_is_named(tmp_path, tree, model_args) -> None:
    """A writer that follows nothing (``finder index``) is named too: wait for it."""
    library = tmp_path / "lib"
    CLI(library)("index", str(tree), *model_args, "--quiet")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(library)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        code, err = second_writer(library, "index", str(tree))
        assert code == 1 and len(err) == 1, err
        assert f"pid {holder.pid}" in err[0] and "wait for it to finish" in err[0]
    finally:
        holder.kill()
        holder.wait()
    # killed: its record is stale, the lock went with it
    assert owner.read(library) is None
    CLI(library)("index", str(tree), "--quiet")


HOLD = """
import sys, time
from finder.library import Library
lib = Library(sys.argv[1])
lib.lock()
print("holding", flush=True)
time.sleep(600)
"""


class Served(Child):
    """``finder serve --watch`` in its own process: its URL, its stderr lines."""

    def __init__(self, library: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "finder", "serve", "--watch", "--library", str(library)]
        self.proc = subprocess.Popen(
            [*cmd, "--no-open", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.url = self.proc.stdout.readline().strip()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.communicate(timeout=30)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def api(self, route: str) -> dict:
        return httpx.get(self.url.replace("/?", f"{route}?"), timeout=60).json()


def test_serve_watch_is_the_one_writer(tmp_path, tree, model_args) -> None:
    library = tmp_path / "lib"
    other = tmp_path / "other"
    make_photo(other / "x.jpg", "green", seed=5)
    CLI(library)("index", str(tree), *model_args, "--quiet")
    CLI(library)("learn", "red", *(str(tree / "red" / f"{i}.jpg") for i in range(3)))
    s = Served(library)
    try:
        s.wait_for(lambda: any("watching" in line for line in s.err), "the watch")
        assert owner.read(library)["pid"] == s.proc.pid

        added = make_photo(tree / "red" / "new.jpg", "red", seed=77)

        def counted() -> bool:
            st = s.api("/api/status")
            return st["images"] == 7 and st["pending"] == 0

        s.wait_for(counted, "the new photo counted by the page")
        twin = make_photo(tmp_path / "twin" / "new.jpg", "red", seed=77)
        assert nearest(library, twin)[0] == str(added)  # found from another process
        with Library(library) as lib:  # the page's answer is find's, the new photo included
            assert {m["path"] for m in s.api("/api/find/red")} == {m.path for m in lib.find("red")}

        code, err = second_writer(library, "index", str(tree))
        assert code == 0 and err[0].startswith("finder: nothing to do:"), err
        code, err = second_writer(library, "index", str(other))
        assert code == 1 and len(err) == 1, err
        assert f"pid {s.proc.pid}" in err[0] and "finder serve --watch" in err[0]
        assert f"`finder index {other}`" in err[0]
        code, err = second_writer(library, "serve", "--watch", "--no-open", "--port", "0")
        assert code == 1 and len(err) == 1 and "finder serve` (without --watch)" in err[0], err
    finally:
        assert s.stop() == 0, s.err
    assert "Traceback" not in "\n".join(s.err)
    assert not (library / owner.FILE).exists()
    CLI(library)("index", str(other), "--quiet")  # the lock is free again
    assert status(library)["images"] == 8


def test_serve_watch_without_a_root_says_so(tmp_path) -> None:
    code, err = second_writer(tmp_path / "lib", "serve", "--watch", "--no-open", "--port", "0")
    assert code == 2 and len(err) == 1 and "finder index FOLDER" in err[0], err


def test_owner_record_is_json_a_person_can_read(tmp_path) -> None:
    owner.write(tmp_path, following=["/a"], offline=["/a/disk"])
    data = json.loads((tmp_path / owner.FILE).read_text())
    assert data["pid"] == os.getpid() and data["following"] == ["/a"]
    assert re.match(r"\S", data["command"])
    assert owner.read(tmp_path) is None  # our own record: no other process holds it
    owner.remove(tmp_path)
    assert not (tmp_path / owner.FILE).exists()


def test_a_video_copied_in_while_watching_is_embedded_as_an_index_run_does(
    tmp_path, tree, model_args
) -> None:
    """A watch's batches embed videos as a plain index run does: one item, its frames stored."""
    from tests.ingest.videos import Shot, slideshow

    library = tmp_path / "lib"
    with Watcher.index(library, [tree], model_args) as w:
        clip = tmp_path / "clip.mp4"
        slideshow(clip, [Shot(tree / "red" / "0.jpg", 2), Shot(tree / "blue" / "0.jpg", 2)])
        shutil.move(clip, tree / "clip.mp4")
        w.settled(7)
        st = status(library)
        assert (st["videos"], st["failed"]) == (1, 0) and st["frames"] >= 2
        assert w.stop() == 0
