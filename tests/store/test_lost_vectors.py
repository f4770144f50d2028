"""Issue 15, case 2: vectors or ids damaged on disk. The images that lost their vector go back to
pending when the library opens (``status`` says so), and ONE ``index`` run embeds exactly them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from finder.library import Library
from tests.test_library import _choice, assert_consistent


def _damage(vectors: Path, how: str) -> None:
    vec, ids = vectors / "vectors-0.f16", vectors / "ids-0.i64"
    if how == "truncated vectors":  # truncate -s $((size/2)) LIB/vectors/vectors-0.f16
        os.truncate(vec, vec.stat().st_size // 2)
    elif how == "truncated ids":
        os.truncate(ids, ids.stat().st_size // 2)
    elif how == "garbage ids":
        ids.write_bytes(np.random.default_rng(0).bytes(ids.stat().st_size))
    elif how == "deleted vectors":
        vec.unlink()


LOST_ROWS = {  # 13 rows: half a file keeps 6
    "truncated vectors": slice(6, 13),
    "truncated ids": slice(6, 13),
    "garbage ids": slice(0, 13),
    "deleted vectors": slice(0, 13),
}


def _indexed(tmp_path: Path, photo_tree: Path, model_args) -> tuple[Path, np.ndarray]:
    """A library of the 13 photos, indexed one colour at a time; and the id of each row."""
    lib_dir = tmp_path / "lib"
    roots = [str(photo_tree / kind) for kind in ("red", "blue", "green")]
    with Library(lib_dir, backbone=_choice(model_args)) as lib:
        assert lib.index(roots).embedded == 13
    return lib_dir, np.fromfile(lib_dir / "vectors" / "ids-0.i64", dtype=np.int64)


def _works_on(lib: Library, path: str) -> None:
    assert len(lib.similar(path, top=3)) == 3
    lib.learn("lost", [path])
    assert len(lib.find("lost", top=3)) == 3


@pytest.mark.parametrize("how", list(LOST_ROWS))
def test_lost_vectors_are_pending_at_once_and_one_run_heals(
    tmp_path: Path, photo_tree: Path, model_args, how: str
) -> None:
    lib_dir, row_ids = _indexed(tmp_path, photo_tree, model_args)
    lost = sorted(row_ids[LOST_ROWS[how]].tolist())
    _damage(lib_dir / "vectors", how)
    with Library(lib_dir) as lib:
        status = lib.status()  # does not claim them ok
        assert (status["images"], status["pending"]) == (13 - len(lost), len(lost))
        assert (
            sorted(
                i for i, _ in lib.folder.open_catalog_for_writing().pending_under(str(photo_tree))
            )
            == lost
        )
        assert any("damaged" in m and f"{len(lost)} images" in m for m in lib.messages)
    with Library(lib_dir) as lib:
        summary = lib.index([str(photo_tree)])
        assert summary.embedded == len(lost) and summary.failed == 0
        assert lib.status()["pending"] == 0
        assert_consistent(lib)
        _works_on(lib, lib.folder.open_catalog_for_writing().paths_for([lost[0]])[lost[0]])


def test_one_index_run_heals_without_a_status_first(
    tmp_path: Path, photo_tree: Path, model_args
) -> None:
    lib_dir, row_ids = _indexed(tmp_path, photo_tree, model_args)
    lost = row_ids[6:].tolist()
    _damage(lib_dir / "vectors", "truncated vectors")
    with Library(lib_dir) as lib:
        assert lib.index([str(photo_tree)]).embedded == len(lost)
        assert_consistent(lib)
        _works_on(lib, lib.folder.open_catalog_for_writing().paths_for([lost[-1]])[lost[-1]])
    with Library(lib_dir) as lib:  # and nothing is found damaged again
        assert lib.index([str(photo_tree)]).embedded == 0
        assert lib.status()["images"] == 13 and not lib.messages
