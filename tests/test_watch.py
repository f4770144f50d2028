"""`finder index ROOT --watch` end to end: a real watcher process (real watchdog, real files,
the real model), changes made to the folders, and what another process (this one) then sees:
`status` counts, `find` and `similar` answers. Every wait is bounded and polls for the outcome."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finder.library import Library
from finder.store.catalog import OK
from tests.conftest import REPO, make_kinds, make_photo
from tests.test_library import assert_consistent

WAIT = 120.0  # seconds an outcome may take on a loaded machine before a test fails


class Child:
    """A finder process of a test's: ``proc``, and its stderr lines in ``err`` (read by a
    thread of the subclass's)."""

    proc: subprocess.Popen
    err: list

    def wait_for(self, outcome: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"finder ended ({self.proc.returncode}): {self.err}")
            got = outcome()
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout}s; stderr: {self.err[-5:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


class Watcher(Child):
    """A watcher in its own process (``Watcher.index(...)``: ``python -m finder index ROOT...
    --watch --json``); its JSON lines (the first pass's summary, then one per batch) and its
    stderr lines are collected."""

    def __init__(self, library: Path, cmd: list[str]) -> None:
        self.library = library
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env
        )
        self.out: list[dict] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()
        self.wait_for(lambda: any("watching" in line for line in self.err), "the first pass")

    @classmethod
    def index(cls, library: Path, roots: list[Path], model_args: list[str], *extra: str):
        cmd = [sys.executable, "-m", "finder", "index", *map(str, roots), "--watch", "--json"]
        w = cls(library, [*cmd, "--library", str(library), *model_args, *extra])
        # its stdout and stderr are read by two threads: "watching" on stderr can come in
        # before the first pass's summary on stdout has been read
        w.wait_for(lambda: w.out, "the first pass's summary on stdout")
        return w

    @staticmethod
    def _read(stream, sink: list) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("{"):
                sink.append(json.loads(line))
            elif line:
                sink.append(line)

    def settled(self, images: int) -> dict:
        """Wait until another process's ``status`` counts ``images``, nothing pending."""

        def check() -> dict | None:
            s = status(self.library)
            return s if s["images"] == images and s["pending"] == 0 else None

        return self.wait_for(check, f"status counting {images} images, none pending")

    @property
    def batches(self) -> list[dict]:
        return [d for d in self.out if d.get("batch")]

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def status(library: Path) -> dict:
    with Library(library) as lib:
        return lib.status()


def _ok(library: Path) -> int:
    with Library(library) as lib:
        return lib.folder.open_catalog().counts()[OK]


def row(library: Path, path: Path):
    with Library(library) as lib:
        return lib.folder.open_catalog().image_by_path(str(path))


def similar_paths(library: Path, path: Path, top: int = 3) -> list[tuple[str, float]]:
    with Library(library) as lib:
        return [(m.path, m.score) for m in lib.similar(str(path), top=top)]


def nearest(library: Path, twin: Path) -> tuple[str, float]:
    """The library's photo most like ``twin`` (a photo outside the library, embedded afresh:
    the same bytes as a library photo find that photo at similarity 1)."""
    return similar_paths(library, twin, top=1)[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_kinds(tmp_path / "photos", 3)


def test_added_changed_moved_renamed_deleted_while_watching(tmp_path, tree, model_args) -> None:
    library = tmp_path / "lib"
    with Watcher.index(library, [tree], model_args) as w:
        assert w.out[0]["new"] == 9 and status(library)["images"] == 9
        with Library(library) as lib:  # a class, learned from another process meanwhile
            lib.learn("red", [str(p) for p in sorted((tree / "red").glob("*.jpg"))])

        # added: findable by status, similar and find from this (another) process
        added = make_photo(tree / "red" / "new.jpg", "red", seed=77)
        twin = make_photo(tmp_path / "twins" / "new.jpg", "red", seed=77)
        w.settled(10)
        assert nearest(library, twin) == (str(added), pytest.approx(1.0, abs=1e-3))
        with Library(library) as lib:
            found = {m.path: m.score for m in lib.find("red", min_prob=0.0)}
            assert str(added) in found
            copy_prob = found[str(tree / "red" / "0.jpg")]
            threshold = lib.folder.open_catalog().get_class("red")["threshold"]
        # a copy of an example: every class scores it as it scores the example
        shutil.copy2(tree / "red" / "0.jpg", tree / "red" / "copy.jpg")
        w.settled(11)
        hits = w.wait_for(
            lambda: [b for b in w.batches if b["new"] == 1 and b["embedded"] == 1][-1:], "batch"
        )
        assert hits[0]["classes"].get("red", 0) == (1 if copy_prob >= threshold else 0)

        # changed: same id, its vector now the new content's
        before = row(library, tree / "blue" / "0.jpg")
        make_photo(tree / "blue" / "0.jpg", "green", seed=500, size=(170, 130))
        twin = make_photo(tmp_path / "twins" / "0.jpg", "green", seed=500, size=(170, 130))

        def changed() -> bool:
            now = row(library, tree / "blue" / "0.jpg")
            if now.status != OK or now.size == before.size:
                return False
            top = nearest(library, twin)
            return top[0] == str(tree / "blue" / "0.jpg") and top[1] > 0.999

        w.wait_for(changed, "the changed photo re-embedded")
        assert row(library, tree / "blue" / "0.jpg").id == before.id
        assert status(library)["images"] == 11

        # moved: same id, nothing embedded
        embedded = sum(b["embedded"] for b in w.batches)
        moving = row(library, tree / "green" / "1.jpg")
        (tree / "elsewhere").mkdir()
        os.rename(tree / "green" / "1.jpg", tree / "elsewhere" / "1.jpg")
        w.wait_for(lambda: row(library, tree / "elsewhere" / "1.jpg"), "the move")
        time.sleep(3)
        print("\n".join(w.err))
        assert row(library, tree / "elsewhere" / "1.jpg").id == moving.id
        assert row(library, tree / "green" / "1.jpg") is None

        # a whole folder renamed: every photo moves, none is embedded again
        ids = {p.name: row(library, p).id for p in (tree / "red").glob("*.jpg")}
        os.rename(tree / "red", tree / "rouge")

        def renamed() -> bool:
            return all(
                (r := row(library, tree / "rouge" / n)) and r.id == i for n, i in ids.items()
            )

        try:
            w.wait_for(renamed, "the folder rename", timeout=15)
        except AssertionError:
            print({n: row(library, tree / "rouge" / n) for n in ids}, ids)
            print("\n".join(w.err))
            raise
        assert not any(row(library, tree / "red" / n) for n in ids)
        w.settled(11)
        assert sum(b["embedded"] for b in w.batches) == embedded
        assert nearest(library, tmp_path / "twins" / "new.jpg")[0] == str(
            tree / "rouge" / "new.jpg"
        )

        # deleted: gone from status and from the answers
        os.remove(tree / "rouge" / "new.jpg")
        w.settled(10)
        with Library(library) as lib:
            assert str(tree / "rouge" / "new.jpg") not in {
                m.path for m in lib.find("red", min_prob=0.0)
            }
        assert w.stop() == 0
    with Library(library) as lib:
        assert not lib.folder.open_catalog().get_meta("dirty")
        assert_consistent(lib)
        assert lib.check() == []
    assert list((library / "backups").glob("catalog-*.db")), "no backup after the watch"


def test_a_root_removed_and_put_back_loses_nothing(tmp_path, tree, model_args) -> None:
    library = tmp_path / "lib"
    away = tmp_path / "unplugged"
    with Watcher.index(library, [tree], model_args) as w:
        os.rename(tree, away)  # the disk is gone
        w.wait_for(lambda: status(library)["offline_roots"] == [str(tree)], "offline")
        s = status(library)
        assert s["images"] == 9 and s["offline"] == 9
        w.wait_for(lambda: any("offline (missing)" in line for line in w.err), "said so")
        time.sleep(2 * 1.0)  # a deletion would have been applied by now: none may be
        assert status(library)["images"] == 9
        os.rename(away, tree)  # back
        w.wait_for(lambda: status(library)["offline_roots"] == [], "back online")
        assert status(library)["images"] == 9
        make_photo(tree / "blue" / "later.jpg", "blue", seed=41)  # followed again
        w.settled(10)
        assert sum(b["deleted"] for b in w.batches) == 0
        assert w.stop() == 0


def test_a_plain_index_keeps_an_offline_root_until_it_is_forgotten(
    tmp_path, tree, model_args, cli
) -> None:
    cli("index", str(tree), *model_args)
    mount_point = tmp_path / "photos"
    os.rename(mount_point, tmp_path / "away")  # the disk is gone
    result = cli("index", str(mount_point))
    assert "offline (missing)" in result.stderr and "9 photos are kept" in result.stderr
    s = cli.json("status")
    assert (s["images"], s["offline"], s["offline_roots"]) == (9, 9, [str(mount_point)])
    result = cli("index", str(mount_point))  # again: still kept
    assert "offline (missing)" in result.stderr
    assert cli.json("status")["images"] == 9
    missing = cli("index", str(tmp_path / "never-indexed"), ok=False)
    assert missing.exit_code != 0 and "no such folder" in missing.stderr
    unknown = cli("index", "--forget-root", str(tmp_path / "never-indexed"), ok=False)
    assert unknown.exit_code != 0 and "not a folder of this library" in unknown.stderr
    forgot = cli("index", "--forget-root", str(mount_point))
    assert "9 photos dropped" in forgot.stderr
    s = cli.json("status")
    assert (s["images"], s["offline"], s["offline_roots"], s["roots"]) == (0, 0, [], [])


def test_a_kill_while_watching_then_a_plain_index_loses_nothing(tmp_path, tree, model_args) -> None:
    library = tmp_path / "lib"
    with Watcher.index(library, [tree], model_args) as w:
        burst = tmp_path / "card"
        for i in range(300):
            make_photo(burst / f"{i:03d}.jpg", "blue", seed=1000 + i, size=(64, 48))
        os.rename(burst, tree / "card")  # a card's photos arrive at once
        w.wait_for(lambda: _ok(library) >= 9 + 64, "some of the card stored")
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait()
    with Library(library) as lib:
        summary = lib.index([str(tree)])
        assert not summary.interrupted
        assert lib.status()["images"] == 309 and lib.status()["pending"] == 0
        assert_consistent(lib)
        assert lib.check() == []


def test_poll_alone(tmp_path, tree, model_args) -> None:
    library = tmp_path / "lib"
    with Watcher.index(library, [tree], model_args, "--poll", "0.5") as w:
        assert _inotify_watches(w.proc.pid) == 0, "--poll must not use the system's events"
        added = make_photo(tree / "green" / "polled.jpg", "green", seed=88)
        twin = make_photo(tmp_path / "twin.jpg", "green", seed=88)
        w.settled(10)
        assert nearest(library, twin)[0] == str(added)
        before = row(library, tree / "blue" / "1.jpg")
        os.rename(tree / "blue" / "1.jpg", tree / "blue" / "moved.jpg")
        w.wait_for(lambda: row(library, tree / "blue" / "moved.jpg"), "the move, by a rescan")
        assert row(library, tree / "blue" / "moved.jpg").id == before.id
        os.remove(added)
        w.settled(9)
        assert w.stop() == 0


def _inotify_watches(pid: int) -> int:
    """The inotify watches a process holds (its fdinfo), 0 without any."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        total += text.count("inotify wd:")
    return total


def _userns_watch_limit() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-Ur", "sh", "-c", "echo 4 > /proc/sys/user/max_inotify_watches"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.parametrize("when", ["at start", "while running"])
def test_the_watch_limit_is_said_once_and_the_rest_is_polled(
    tmp_path, tree, model_args, cli, when
) -> None:
    """In a user namespace of its own the watcher gets a small limit of inotify watches (the
    machine's limit is untouched): below the root's folders (the root is rescanned instead), or
    just above them (folders made later are left unwatched, and rescanned)."""
    if not _userns_watch_limit():
        pytest.skip("needs unshare -Ur and /proc/sys/user/max_inotify_watches")
    for i in range(6):
        make_photo(tree / "more" / f"d{i}" / "a.jpg", "red", seed=300 + i)
    folders = sum(1 for p in tree.rglob("*") if p.is_dir()) + 1
    limit = 4 if when == "at start" else folders + 2
    cli("index", str(tree), *model_args)  # the library and its backbone
    script = (
        "import json, sys\n"
        "from finder.library import Library\n"
        "from finder.show.progress import say\n"
        "from finder.library import WatchOptions\n"
        "Library(sys.argv[1]).watch([sys.argv[2]], WatchOptions(no_events_poll=1.0), say=say,"
        " on_index=lambda s: say('watching'),"
        " on_batch=lambda b: print(json.dumps(b.to_dict()), flush=True))\n"
    )
    run = [sys.executable, "-c", script, str(cli.library), str(tree)]
    shell = f"echo {limit} > /proc/sys/user/max_inotify_watches && exec "
    shell += " ".join(map(_quote, run))
    with Watcher(cli.library, ["unshare", "-Ur", "sh", "-c", shell]) as w:
        if when == "at start":
            said = [line for line in w.err if "limit" in line]
            assert len(said) == 1 and "rescanned every 1 s" in said[0], w.err
        for i in range(6):  # new folders: more than the watches left
            make_photo(tree / "later" / f"d{i}" / "b.jpg", "blue", seed=400 + i)
        w.settled(9 + 6 + 6)
        said = [line for line in w.err if "limit" in line]
        assert len(said) == 1, w.err  # said once
        assert "max_user_watches" in said[0] and "rescanned every 1 s" in said[0]
        assert ("left unwatched" in said[0]) == (when == "while running"), said
        assert w.stop() == 0


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_find_from_another_process_sees_a_watched_photo(tmp_path, tree, model_args) -> None:
    """What the watcher commits is what a reader sees: `finder similar` run as its own process
    returns the new photo, and a library held open as `finder serve` holds it (shared, its
    store opened before the photo came) sees it once it refreshes."""
    library = tmp_path / "lib"
    with Watcher.index(library, [tree], model_args, "--thumbnails") as w:
        served = Library.open_shared(library)
        served.refresh()
        twin = make_photo(tmp_path / "twin.jpg", "green", seed=123)
        assert served.similar(str(twin), top=1)[0].path != str(tree / "green" / "fresh.jpg")
        added = make_photo(tree / "green" / "fresh.jpg", "green", seed=123)
        w.settled(10)
        out = subprocess.run(
            [sys.executable, "-m", "finder", "similar", str(twin), "--top", "1", "--json"]
            + ["--library", str(library)],
            capture_output=True,
            cwd=REPO,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["path"] == str(added)
        assert served.refresh()
        assert served.similar(str(twin), top=1)[0].path == str(added)
        served.close()
        new_id = row(library, added).id
        assert list((library / "thumbs").rglob(f"{new_id}-*.jpg")), "--thumbnails: none made"
        assert w.stop() == 0
