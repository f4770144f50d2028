"""The Library façade from Python: crash repair, locking, interruption, backbone records."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finder.errors import BackboneMismatch, LibraryLocked, UnknownClass, UsageError
from finder.library import BackboneChoice, Library
from finder.show.text import error_line
from finder.store.catalog import OK, PENDING
from tests.conftest import make_photo


def _choice(model_args: list[str]) -> BackboneChoice:
    model = model_args[model_args.index("--model") + 1]
    layer = model_args[model_args.index("--layer") + 1] if "--layer" in model_args else None
    return BackboneChoice(model=model, layer=layer)


def assert_consistent(lib: Library) -> None:
    """Every ok image has exactly one vector, and every vector is an ok image's or a pending
    one's (a pending photo keeps its vector until a new one replaces it: ``vector_ids``; a kill
    between storing a batch's vectors and the catalog's commit leaves it so)."""
    ids = (
        lib.folder.open_vectors_and_repair().ids()
    )  # opening the store first repairs a dirty library
    catalog = lib.folder.open_catalog_for_writing()
    ok = np.sort(np.asarray(catalog.ok_ids(), dtype=np.int64))
    holders = catalog.vector_ids()
    assert len(np.unique(ids)) == len(ids)
    assert np.isin(ok, ids).all() and np.isin(ids, holders.allowed).all()
    if not catalog.counts().get(PENDING):  # nothing pending: the vectors are the ok images'
        assert np.array_equal(np.sort(ids), ok)


@pytest.fixture
def indexed(tmp_path: Path, photo_tree: Path, model_args) -> Path:
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        summary = lib.index([str(photo_tree)])
        assert summary.embedded == 13
        assert_consistent(lib)
    return tmp_path / "lib"


def test_python_api_without_cli(indexed: Path, photo_tree: Path) -> None:
    with Library(indexed) as lib:
        assert lib.status()["images"] == 13
        record = lib.learn("red", [str(photo_tree / "red" / "0.jpg")])
        assert record["n_pos"] == 1
        matches = lib.find("red", top=5)
        assert len(matches) == 5 and matches[0].score >= matches[-1].score
        assert all(Path(m.path).exists() for m in matches)
        assert len(lib.similar(str(photo_tree / "blue" / "0.jpg"), top=3)) == 3
        with pytest.raises(UnknownClass):
            lib.find("dog")


def test_stray_vectors_from_a_crash_are_dropped(indexed: Path) -> None:
    with Library(indexed) as lib:
        store = lib.folder.open_vectors_and_repair()
        stray = np.asarray([10_001, 10_002], dtype=np.int64)
        vectors = np.eye(2, store.dim, dtype=np.float32)
        store.add(stray, vectors)  # as if killed after the vectors, before the catalog
        store.commit()
        lib.folder.open_catalog_for_writing().set_meta("dirty", True)
    with Library(indexed) as lib:
        assert_consistent(lib)
        assert not lib.folder.open_vectors_and_repair().has(stray).any()
        assert any("dropped 2 stray vectors" in m for m in lib.messages)
        assert lib.folder.open_catalog_for_writing().get_meta("dirty") is False


def test_ok_images_without_vectors_are_embedded_again(indexed: Path, photo_tree: Path) -> None:
    with Library(indexed) as lib:
        lost = np.asarray(lib.folder.open_catalog_for_writing().ok_ids()[:3], dtype=np.int64)
        lib.folder.open_vectors_and_repair().remove(
            lost
        )  # as if the vectors never reached the disk
        lib.folder.open_vectors_and_repair().commit()
        lib.folder.open_catalog_for_writing().set_meta("dirty", True)
    with Library(indexed) as lib:
        assert_consistent(lib)
        assert lib.status()["pending"] == 3
        summary = lib.index([str(photo_tree)])
        assert summary.embedded == 3 and summary.new == 0 and summary.changed == 0
        assert lib.status()["images"] == 13 and lib.status()["pending"] == 0
        assert_consistent(lib)


def test_a_second_writer_is_refused(indexed: Path, photo_tree: Path) -> None:
    with Library(indexed) as first:
        first.folder.open_vectors_and_repair()  # takes the lock
        with pytest.raises(LibraryLocked, match="another finder"):
            Library(indexed).index([str(photo_tree)])
        # readers are not refused: they see what the writer has committed, read-only
        first.learn("red", [str(photo_tree / "red" / "0.jpg")])
        first.folder.open_catalog_for_writing().set_meta("dirty", True)  # as during a run
        with Library(indexed) as reader:
            assert reader.folder.open_vectors_and_repair().read_only
            assert len(reader.find("red", top=13)) == 13
            assert len(reader.similar(str(photo_tree / "blue" / "1.jpg"), top=2)) == 2
            reader.learn("blue", [str(photo_tree / "blue" / "0.jpg")])
        assert (indexed / "vectors").exists() and first.folder.open_catalog_for_writing().get_meta(
            "dirty"
        ) is True
        first.folder.open_catalog_for_writing().set_meta("dirty", False)
    with Library(indexed) as again:
        assert again.index([str(photo_tree)]).unchanged == 13


def test_ctrl_c_keeps_the_work_done(tmp_path: Path, model_args) -> None:
    root = tmp_path / "many"
    for i in range(150):
        make_photo(root / f"{i:03d}.jpg", "red", seed=i, size=(64, 48))
    seen = []

    def interrupt(event) -> None:
        seen.append(event.done)
        if event.phase == "embed" and event.done == 100:
            raise KeyboardInterrupt

    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        summary = lib.index([str(root)], progress=interrupt)
        assert summary.interrupted
        kept = lib.status()["images"]
        assert 0 < kept < 150
        assert lib.status()["pending"] == 150 - kept
        assert_consistent(lib)
        rest = lib.index([str(root)])
        assert rest.embedded == 150 - kept and not rest.interrupted
        assert lib.status()["images"] == 150
        assert_consistent(lib)


def test_sigkill_mid_run_is_repaired(tmp_path: Path, model_args) -> None:
    root = tmp_path / "many"
    for i in range(300):
        make_photo(root / f"{i:03d}.jpg", "blue", seed=i, size=(64, 48))
    library = tmp_path / "lib"
    cmd = [sys.executable, "-m", "finder", "index", str(root), "--library", str(library)]
    proc = subprocess.Popen([*cmd, *model_args, "--quiet"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        # wait until some images are committed, then kill without warning
        while time.monotonic() < deadline and proc.poll() is None:
            if (library / "catalog.db").exists():
                with Library(library) as peek:
                    if peek.folder.open_catalog_for_writing().counts()[OK] >= 64:
                        break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Library(library) as lib:
        counts = lib.folder.open_catalog_for_writing().counts()
        assert counts[OK] >= 64
        assert_consistent(lib)
        summary = lib.index([str(root)])
        assert summary.embedded == counts[PENDING] + (300 - sum(counts.values()))
        assert lib.status()["images"] == 300
        assert_consistent(lib)


def test_bad_roots_and_examples(tmp_path: Path, indexed: Path) -> None:
    with Library(indexed) as lib:
        with pytest.raises(UsageError, match="no such folder"):
            lib.index([str(tmp_path / "missing")])
        with pytest.raises(UsageError, match="name at least one folder"):
            lib.index([])
        with pytest.raises(UsageError, match="at least one example"):
            lib.learn("x", [])


def test_precision_recorded_and_old_libraries_mean_float32(indexed: Path, photo_tree: Path) -> None:
    with Library(indexed) as lib:
        assert lib.status()["backbone_info"]["precision"] == "float32"  # a model file: as saved
        old = dict(lib.folder.open_catalog_for_writing().get_meta("backbone"))
        del old["precision"]  # as recorded before precisions were
        lib.folder.open_catalog_for_writing().set_meta("backbone", old)
        assert lib.status()["backbone_info"]["precision"] == "float32"
    with pytest.raises(UsageError) as refused:
        Library(indexed, backbone=BackboneChoice(precision="half"))
    assert error_line(refused.value).startswith("--precision must be one of")  # as the CLI says
    with Library(indexed, backbone=BackboneChoice(precision="bfloat16")) as lib:
        with pytest.raises(BackboneMismatch, match="cannot mix in bfloat16 vectors"):
            lib.index([str(photo_tree)])
    for ok in ("float32", "auto"):
        with Library(indexed, backbone=BackboneChoice(precision=ok)) as lib:
            assert lib.index([str(photo_tree)]).unchanged == 13
            assert "precision" not in lib.folder.open_catalog_for_writing().get_meta(
                "backbone"
            )  # the record is kept


def test_every_teaching_change_is_one_change_applied_whole(indexed: Path, photo_tree: Path) -> None:
    """learn, learn_ids and forget are Changes through Teaching.apply; a Change applied
    directly (marks by id and by path, marks taken back) does what they do, in one step."""
    from finder.library import Change, Mark

    red = [str(photo_tree / "red" / f"{i}.jpg") for i in range(3)]
    blue = str(photo_tree / "blue" / "0.jpg")
    with Library(indexed) as lib:
        ids = {m.path: m.id for m in lib.browse(0, 100)[1]}
        by_learn = lib.learn("red", red[:2], negatives=[blue])
        record = lib.apply(
            Change(
                "again", (Mark(ids[red[0]], red[0], 1), Mark(None, red[1], 1), Mark(None, blue, 0))
            )
        )
        assert record is not None and record["head"] == by_learn["head"]  # the same training
        assert lib.examples("again") == lib.examples("red")
        # marks taken back and given in one change: one retraining, all or nothing
        record = lib.apply(Change("again", (Mark(ids[red[2]], red[2], 1),), undo=(blue,)))
        assert record is not None and (record["n_pos"], record["n_neg"]) == (3, 0)
        with pytest.raises(UsageError, match="needs at least one example"):
            lib.apply(Change("again", undo=tuple(red)))
        assert len(lib.examples("again")) == 3  # refused: nothing changed
        assert lib.apply(Change("again", forget=True)) is None
        assert [c["name"] for c in lib.classes()] == ["red"]
