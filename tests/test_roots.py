"""Roots that vanish are not deletions: a disk really unmounted (a tmpfs mounted and unmounted
in a user and mount namespace of the test's own), a root recorded as a mount point, a disk
mounted inside a root; and the rules of `finder.roots` on plain folders."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from finder.library import Library
from finder.roots import offline_parts, recorded
from tests.conftest import REPO, make_photo


def _userns_mounts(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    cmd = f"mount -t tmpfs none {probe} && umount {probe}"
    try:
        run = subprocess.run(["unshare", "-Urm", "sh", "-c", cmd], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0


def test_an_unmounted_disk_keeps_its_photos(tmp_path: Path, model_args) -> None:
    if not _userns_mounts(tmp_path):
        pytest.skip("needs unshare -Urm (a user and mount namespace) to mount a tmpfs")
    pictures, staged, lib = tmp_path / "pictures", tmp_path / "staged", tmp_path / "lib"
    disk = pictures / "usb"  # a disk mounted inside the root
    card = tmp_path / "card"  # a disk that is itself a root
    for i in range(3):
        make_photo(pictures / "local" / f"{i}.jpg", "red", seed=i)
    for i in range(4):
        make_photo(staged / f"{i}.jpg", "blue", seed=20 + i)
    disk.mkdir()
    card.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    finder = f"cd {REPO} && {shlex.quote(sys.executable)} -m finder"
    models = " ".join(map(shlex.quote, model_args))
    script = f"""
    set -e
    mount -t tmpfs none {disk}; cp -p {staged}/* {disk}/
    mount -t tmpfs none {card}; cp -p {staged}/* {card}/
    ({finder} index {pictures} --library {lib} {models} --json) > {out}/first.json
    ({finder} index {card} --library {lib}-card {models} --json) > {out}/card1.json
    umount {disk}; umount {card}
    rm {pictures}/local/0.jpg
    ({finder} index {pictures} --library {lib} --json) > {out}/second.json 2> {out}/second.err
    ({finder} status --library {lib} --json) > {out}/off.json
    ({finder} index {card} --library {lib}-card --json) > {out}/card2.json 2> {out}/card2.err
    ({finder} status --library {lib}-card --json) > {out}/card-off.json
    mount -t tmpfs none {disk}; cp -p {staged}/* {disk}/
    ({finder} index {pictures} --library {lib} --json) > {out}/third.json
    ({finder} status --library {lib} --json) > {out}/back.json
    """
    run = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, timeout=900)
    assert run.returncode == 0, run.stderr.decode()[-2000:]

    def read(name: str) -> dict:
        return json.loads((out / name).read_text())

    assert read("first.json")["new"] == 7
    second = read("second.json")
    assert (second["deleted"], second["embedded"]) == (1, 0)  # the real deletion only
    err = (out / "second.err").read_text()
    assert f"{disk} (disk mounted in {pictures}) is offline (not mounted)" in err
    assert "its 4 photos are kept" in err
    off = read("off.json")
    assert (off["images"], off["offline"], off["offline_roots"]) == (6, 4, [str(disk)])
    assert read("card2.json")["deleted"] == 0
    assert f"{card} (root) is offline (not mounted)" in (out / "card2.err").read_text()
    card_off = read("card-off.json")
    assert (card_off["images"], card_off["offline"]) == (4, 4)
    third = read("third.json")
    assert (third["embedded"], third["new"], third["unchanged"]) == (0, 0, 6)
    back = read("back.json")
    assert (back["images"], back["offline"], back["offline_roots"]) == (6, 0, [])


def test_the_rules_on_plain_folders(tmp_path: Path, photo_tree: Path, model_args, cli) -> None:
    cli("index", str(photo_tree), *model_args)
    root = str(photo_tree)
    with Library(cli.library) as lib:
        cat = lib.folder.open_catalog()
        assert recorded(cat) == [{"path": root, "dir": True, "mounts": []}]
        assert offline_parts(cat, root) == []
        assert offline_parts(cat, str(tmp_path / "unknown")) == []  # never indexed
    for p in sorted(photo_tree.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    with Library(cli.library) as lib:  # emptied, and no disk was mounted there: a deletion
        cat = lib.folder.open_catalog_for_writing()
        assert offline_parts(cat, root) == []
        record = cat.get_meta("roots")
        cat.set_meta("roots", [])  # as a library indexed before roots were recorded
    with Library(cli.library) as lib:  # finder cannot tell: kept, offline
        cat = lib.folder.open_catalog_for_writing()
        assert [(p.path, p.reason) for p in offline_parts(cat, root)] == [(root, "empty")]
        cat.set_meta("roots", record)
    photo_tree.rmdir()
    with Library(cli.library) as lib:
        assert [p.reason for p in offline_parts(lib.folder.open_catalog(), root)] == ["missing"]
    text = cli("status").stdout
    assert f"offline   13 photos, on {root}" in text
    # an inner folder that held photos is a deletion, not offline
    make_photo(photo_tree / "red" / "0.jpg", "red", seed=0)
    summary = cli.json("index", str(photo_tree))
    assert summary["deleted"] == 12 and cli.json("status")["offline"] == 0
