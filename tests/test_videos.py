"""Indexing videos (issue 27, phase 2): a plain ``finder index`` indexes them, one item each, a
vector per sampled frame; incremental as photos are; a Live Photo and a Motion Photo are one
item, the photo; bad videos fail with their reason; kills during a video's indexing lose
nothing; ``check`` and ``repair`` understand frames. Real PyAV, SQLite, FAISS and backbone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finder.library import BackboneChoice, Library
from finder.store.catalog import OK, PENDING
from tests.conftest import CLI, PHOTOS, REPO, TFLITE_MODEL
from tests.ingest.videos import Shot, slideshow
from tests.ingest.videos import sources as photo_sources

KINDS = ("cat", "dog", "sunflower")


def choice(model_args: list[str]) -> BackboneChoice:
    model = model_args[model_args.index("--model") + 1]
    layer = model_args[model_args.index("--layer") + 1] if "--layer" in model_args else None
    return BackboneChoice(model=model, layer=layer)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three photos of each kind: the shared cats, dogs and sunflowers, else generated ones."""
    return photo_sources(PHOTOS, tmp_path_factory.mktemp("sources"))


def motion_photo(path: Path, photo: Path, video: Path) -> Path:
    """A Google Motion Photo: a JPEG (its XMP saying so) with an MP4 appended."""
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description xmlns:GCamera="http://ns.google.com/photos/1.0/'
        f'camera/" GCamera:MotionPhoto="1" GCamera:MicroVideoOffset="{video.stat().st_size}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()
    Image.open(photo).convert("RGB").save(path, "JPEG", xmp=xmp)
    with open(path, "ab") as f:
        f.write(video.read_bytes())
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory, sources) -> Path:
    """photos/ (the 2nd and 3rd photo of each kind), videos/ (a 12 s cat-dog-sunflower clip
    as MP4, WebM and AVI, made of the 1st photos, which are in photos/ too), live/ (a Live
    Photo: IMG_0001.HEIC beside IMG_0001.MOV), motion/ (a Motion Photo), bad/ (bad videos)."""
    root = tmp_path_factory.mktemp("tree") / "media"
    for kind in KINDS:
        for p in sources[kind]:
            (root / "photos").mkdir(parents=True, exist_ok=True)
            Image.open(p).convert("RGB").save(root / "photos" / f"{kind}-{p.stem}.jpg")
    shots = [Shot(sources[k][0], 4) for k in KINDS]
    (root / "videos").mkdir()
    for ext in ("mp4", "webm", "avi"):
        slideshow(root / "videos" / f"pets.{ext}", shots)
    (root / "live").mkdir()
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.open(sources["dog"][1]).convert("RGB").save(root / "live" / "IMG_0001.HEIC")
    slideshow(root / "live" / "IMG_0001.MOV", [Shot(sources["dog"][1], 2)])
    (root / "motion").mkdir()
    clip = slideshow(root / "motion.mp4", [Shot(sources["cat"][2], 2)]) and root / "motion.mp4"
    motion_photo(root / "motion" / "PXL_0002.MP.jpg", sources["cat"][2], clip)
    clip.unlink()
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mkv").write_text("not a video\n" * 40)
    data = (root / "videos" / "pets.webm").read_bytes()
    (bad / "cut.webm").write_bytes(data[: len(data) // 2])
    return root


EXPECTED_FAILURES = {"empty.mp4": "empty file", "notes.mkv": "not a video", "cut.webm": "truncated"}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tree, model_args) -> Path:
    library = tmp_path_factory.mktemp("lib") / "library"
    cli = CLI(library)
    out = cli.json("index", str(tree), *model_args)
    assert out["failed"] == len(EXPECTED_FAILURES) and out["frames"] > 0
    return library


def frames_by_video(lib: Library) -> dict[str, list[tuple[int, float]]]:
    rows = (
        lib.folder.open_catalog()
        .db.execute("SELECT id, path FROM images WHERE kind = 'video' AND status = 'ok'")
        .fetchall()
    )
    return {os.fsdecode(bytes(p)): lib.folder.open_catalog().frames_of(i) for i, p in rows}


def test_index_counts_videos_as_items(indexed, tree) -> None:
    cli = CLI(indexed)
    status = cli.json("status")
    photos = len(list((tree / "photos").glob("*.jpg")))
    # each photo, each video, the Live Photo (its video left out) and the Motion Photo: one item
    assert status["images"] == photos + 3 + 1 + 1
    assert status["videos"] == 3 and status["failed"] == len(EXPECTED_FAILURES)
    with Library(indexed) as lib:
        frames = frames_by_video(lib)
        assert sorted(Path(p).name for p in frames) == ["pets.avi", "pets.mp4", "pets.webm"]
        assert status["frames"] == sum(len(f) for f in frames.values())
        assert all(len(f) >= 3 for f in frames.values())
        assert lib.folder.open_catalog().image_by_path(str(tree / "live" / "IMG_0001.MOV")) is None
        kinds = lib.folder.open_catalog().kinds(
            [lib.folder.open_catalog().image_by_path(str(tree / "live" / "IMG_0001.HEIC")).id]
        )
        assert list(kinds.values()) == ["photo"]
    failures = {
        Path(f["path"]).name: f["reason"] for f in cli.json("status", "--failed")["failures"]
    }
    assert {k: v.split(" (")[0] for k, v in failures.items()} == EXPECTED_FAILURES
    assert cli("check").stdout.strip() == "no problems found"


def test_video_facts_are_stored(indexed, tree) -> None:
    with Library(indexed) as lib:
        row = (
            lib.folder.open_catalog()
            .db.execute(
                "SELECT duration, n_frames, width, height, date_source FROM images WHERE path = ?",
                [os.fsencode(str(tree / "videos" / "pets.mp4"))],
            )
            .fetchone()
        )
    assert row[0] == pytest.approx(12, abs=0.3) and row[1] >= 3
    assert (row[2], row[3], row[4]) == (320, 240, "file")


def test_each_frame_is_nearest_the_photo_it_shows(indexed, tree, sources) -> None:
    """A frame's vector lies nearest, among the library's photos, to the photo its shot shows:
    the frames are the moments, at their times (what phase 3's answers build on)."""
    if not TFLITE_MODEL.exists():
        pytest.skip(f"needs {TFLITE_MODEL} (a trained backbone), absent here")
    with Library(indexed) as lib:
        store = lib.folder.open_vectors()
        photo_ids = {
            lib.folder.open_catalog()
            .image_by_path(str(tree / "photos" / f"{k}-{sources[k][0].stem}.jpg"))
            .id: k
            for k in KINDS
        }
        others = [
            lib.folder.open_catalog().image_by_path(str(p)).id
            for p in sorted((tree / "photos").glob("*.jpg"))
        ]
        vectors = store.get(np.asarray(others))
        for path, frames in frames_by_video(lib).items():
            for frame_id, t in frames:
                v = store.get(np.asarray([frame_id]))[0]
                nearest = others[int(np.argmax(vectors @ v))]
                shown = KINDS[min(int(t // 4), 2)]
                assert photo_ids.get(nearest) == shown, (path, t)


def copy_of(library: Path, tmp_path: Path) -> Path:
    """A copy of the indexed library (of the module's tree, which stays where it is)."""
    shutil.copytree(library, tmp_path / "library")
    return tmp_path / "library"


def reindex(tree: Path, library: Path, *extra: str) -> dict:
    return CLI(library).json("index", str(tree), *extra)


def test_incremental_unchanged_touched_changed_moved_deleted(tree, tmp_path, sources, model_args):
    """On a copy of the tree: each change to a video is handled as for photos."""
    media = tmp_path / "m"
    shutil.copytree(tree, media)
    library = tmp_path / "library"
    cli = CLI(library)
    cli.json("index", str(media), *model_args)
    with Library(library) as lib:
        before = frames_by_video(lib)
    mp4, avi, webm = (str(media / "videos" / f"pets.{e}") for e in ("mp4", "avi", "webm"))

    # unchanged: never opened again (garbage of the same size and time is not noticed)
    st = os.stat(mp4)
    Path(mp4).write_bytes(os.urandom(st.st_size))
    os.utime(mp4, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = reindex(media, library)
    assert out["embedded"] == 0 and out["frames"] == 0 and out["failed"] == 0
    with Library(library) as lib:
        assert frames_by_video(lib) == before

    # changed: all its frames replaced, the old ones gone from the store
    slideshow(Path(mp4), [Shot(sources["sunflower"][1], 3), Shot(sources["cat"][1], 3)])
    out = reindex(media, library)
    assert out["changed"] == 1 and out["embedded"] == 1 and out["frames"] >= 2
    with Library(library) as lib:
        after = frames_by_video(lib)
        old = [i for i, _ in before[mp4]]
        assert not set(old) & {i for i, _ in after[mp4]}
        assert not lib.folder.open_vectors().has(np.asarray(old)).any()
        assert max(t for _, t in after[mp4]) < 6
        row = lib.folder.open_catalog().image_by_path(mp4)
        assert row.status == OK

    # moved: same id, same frames, nothing embedded
    with Library(library) as lib:
        lib_id = lib.folder.open_catalog().image_by_path(avi).id
    moved = str(media / "videos" / "renamed.avi")
    os.rename(avi, moved)
    out = reindex(media, library)
    assert out["moved"] == 1 and out["embedded"] == 0
    with Library(library) as lib:
        video_id = lib.folder.open_catalog().image_by_path(moved).id
        assert video_id == lib_id and frames_by_video(lib)[moved] == before[avi]

    # deleted: its frames leave the catalog and the store
    os.unlink(webm)
    out = reindex(media, library)
    assert out["deleted"] == 1
    with Library(library) as lib:
        gone = [i for i, _ in before[webm]]
        assert (
            not lib.folder.open_catalog().frame_rows(gone)
            and not lib.folder.open_vectors().has(np.asarray(gone)).any()
        )
        assert lib.status()["videos"] == 2
    assert CLI(library)("check").stdout.strip() == "no problems found"

    # --no-videos leaves them out, as --exclude would
    out = reindex(media, library, "--no-videos")
    assert out["deleted"] == 2 + len(EXPECTED_FAILURES)  # the bad videos' rows too
    status = CLI(library).json("status")
    assert status["videos"] == 0 and status["frames"] == 0
    assert CLI(library)("check").stdout.strip() == "no problems found"


def test_crash_windows_of_a_video_lose_nothing(indexed, tree, tmp_path) -> None:
    """The three moments a crash can split a video's storing, made by hand: (1) its new frames'
    vectors durable, the catalog not told; (2) the catalog told, the old frames' vectors not yet
    removed; (3) a frame's vector lost. The next open settles each, the video is then pending or
    ok with all its frames, and the next index run completes it; nothing else is touched."""
    library = copy_of(indexed, tmp_path)
    mp4 = str(tree / "videos" / "pets.mp4")
    with Library(library) as lib:
        video = lib.folder.open_catalog_for_writing().image_by_path(mp4).id
        old = lib.folder.open_catalog_for_writing().frames_of(video)
        store = lib.folder.open_vectors_and_repair()
        # (1) new frames written, then the crash
        ids = lib.folder.open_catalog_for_writing().reserve_ids(3)
        store.add(np.asarray(ids), store.get(np.asarray([old[0][0]] * 3)))
        store.commit()
        lib.folder.open_catalog_for_writing().set_meta("dirty", True)
    with Library(library) as lib:
        lib.folder.open_vectors_and_repair()  # opening settles
        assert (
            not lib.folder.open_vectors_and_repair().has(np.asarray(ids)).any()
        )  # dropped: no frame row names them
        assert (
            lib.folder.open_catalog_for_writing().frames_of(video) == old
            and lib.folder.open_catalog_for_writing().image(video).status == OK
        )
        # (2) the catalog records new frames (the old vectors are still in the store)
        from finder.store.catalog import StoredVideo

        store = lib.folder.open_vectors_and_repair()
        ids = lib.folder.open_catalog_for_writing().reserve_ids(2)
        store.add(np.asarray(ids), store.get(np.asarray([old[0][0], old[1][0]])))
        store.commit()
        stored = StoredVideo(video, [(ids[0], 0.0), (ids[1], 5.0)], 12.0)
        lib.folder.open_catalog_for_writing().record_results([(video, None)], [], videos=[stored])
        lib.folder.open_catalog_for_writing().set_meta("dirty", True)
    with Library(library) as lib:
        lib.folder.open_vectors_and_repair()
        assert not lib.folder.open_vectors_and_repair().has(np.asarray([i for i, _ in old])).any()
        assert [i for i, _ in lib.folder.open_catalog_for_writing().frames_of(video)] == ids
        assert lib.folder.open_catalog_for_writing().image(video).status == OK
        # (3) a frame's vector lost
        lib.folder.open_vectors_and_repair().remove(np.asarray([ids[1]]))
        lib.folder.open_vectors_and_repair().commit()
        lib.folder.open_catalog_for_writing().set_meta("dirty", True)
    with Library(library) as lib:
        lib.folder.open_vectors_and_repair()
        assert lib.folder.open_catalog_for_writing().image(video).status == PENDING
        assert lib.folder.open_catalog_for_writing().frames_of(video) == [
            (ids[0], 0.0)
        ]  # still searchable meanwhile
    cli = CLI(library)
    out = cli.json("index", str(tree))
    assert out["resumed"] == 1 and out["embedded"] == 1
    assert cli("check").stdout.strip() == "no problems found"
    with Library(library) as lib:
        assert (
            len(lib.folder.open_catalog_for_writing().frames_of(video))
            == lib.folder.open_catalog_for_writing()
            .db.execute("SELECT n_frames FROM images WHERE id = ?", [video])
            .fetchone()[0]
            >= 3
        )


def test_check_and_repair_understand_frames(indexed, tree, tmp_path) -> None:
    """A frame row of no video and a video missing a frame row (hand edits): check names both;
    repair drops the stray row and the video goes back to pending; index completes it."""
    library = copy_of(indexed, tmp_path)
    cli = CLI(library)
    db = library / "catalog.db"
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO frames(id, video_id, time) VALUES (999999, 888888, 1.0)")
        video, frame = conn.execute(
            "SELECT video_id, id FROM frames ORDER BY id LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM frames WHERE id = ?", [frame])
    conn.close()
    result = cli("check", ok=False)
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert any("belong to no indexed video" in line for line in lines), lines
    assert any("lack some of their frames" in line for line in lines), lines
    assert any("belong to no indexed image" in line for line in lines), lines  # its vector
    report = cli.json("repair")
    assert report["to_embed"] == 1
    assert cli("check").stdout.strip() == "no problems found"
    out = cli.json("index", str(tree))
    assert out["resumed"] == 1 and out["embedded"] == 1
    assert cli("check").stdout.strip() == "no problems found"
    with Library(library) as lib:
        assert lib.folder.open_catalog_for_writing().image(video).status == OK


def test_repair_of_a_damaged_catalog_keeps_videos(indexed, tree, tmp_path) -> None:
    """Garbage over the catalog's pages: repair restores the backup plus what it can read; the
    next index completes the library, every video ok with all its frames."""
    library = copy_of(indexed, tmp_path)
    db = library / "catalog.db"
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.seek(min(size - 4096, 3 * 4096))
        f.write(os.urandom(4096))
    cli = CLI(library)
    cli("repair")
    cli.json("index", str(tree))
    assert cli("check").stdout.strip() == "no problems found"
    status = cli.json("status")
    assert status["videos"] == 3 and status["frames"] >= 9


def test_kills_while_indexing_videos_lose_nothing(tmp_path, sources, model_args) -> None:
    """``finder index`` killed (SIGKILL) while it embeds videos, several times, with videos
    changed between runs: after each kill the library opens consistent (every ok video with
    all its frames, every vector a photo's or a frame's), no video indexed and unchanged
    before is lost, and a last run completes it."""
    media = tmp_path / "media"
    media.mkdir()
    photos = [p for k in KINDS for p in sources[k]]
    for i in range(8):
        shots = [Shot(photos[(i + j) % len(photos)], 2) for j in range(6)]
        slideshow(media / f"clip{i}.avi", shots, size=(160, 120))
    library = tmp_path / "library"
    cmd = [sys.executable, "-m", "finder", "index", str(media), "--library", str(library)]
    cmd += [*model_args, "--quiet", "--batch-size", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    progress = library / "progress.json"
    for round_ in range(4):
        indexed_before = ok_videos(library)
        before = indexed_before - changed_since(indexed_before, library)  # and unchanged since
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if json.loads(progress.read_text()).get("phase") == "embed" and (
                    json.loads(progress.read_text()).get("pid") == proc.pid
                ):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        time.sleep(0.1 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert b"Traceback" not in proc.stderr.read()
        with Library(library) as lib:
            lib.folder.open_vectors_and_repair()  # opening settles the killed run
            holders = lib.folder.open_catalog_for_writing().vector_ids()
            ids = lib.folder.open_vectors_and_repair().ids()
            assert len(np.unique(ids)) == len(ids)
            assert not len(np.setdiff1d(holders.required, ids)), round_
            assert not len(np.setdiff1d(ids, holders.allowed)), round_
            assert (
                not lib.folder.open_catalog_for_writing().incomplete_videos()
                and not lib.folder.open_catalog_for_writing().stray_frames()
            )
        assert before <= ok_videos(library), round_
        # a change for the next run: one video rewritten
        slideshow(media / f"clip{round_}.avi", [Shot(photos[round_], 3)], size=(160, 120))
    final = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert len(ok_videos(library)) == 8
    assert CLI(library)("check").stdout.strip() == "no problems found"


def ok_videos(library: Path) -> set[str]:
    if not (library / "catalog.db").exists():
        return set()
    with Library(library) as lib:
        rows = (
            lib.folder.open_catalog()
            .db.execute("SELECT path FROM images WHERE kind = 'video' AND status = 'ok'")
            .fetchall()
        )
    return {os.fsdecode(bytes(r[0])) for r in rows}


def changed_since(paths: set[str], library: Path) -> set[str]:
    """Those of ``paths`` whose file differs from what the catalog recorded (changed on disk:
    pending again is right for them)."""
    out = set()
    with Library(library) as lib:
        for p in paths:
            row = lib.folder.open_catalog().image_by_path(p)
            st = os.stat(p)
            if row is None or (row.size, row.mtime_ns) != (st.st_size, st.st_mtime_ns):
                out.add(p)
    return out


def test_dupes_groups_byte_identical_videos(tmp_path, sources, model_args) -> None:
    """Two copies of one video are a group of identical files, the one to keep first; frames
    take no part in near-duplicate photo groups."""
    media = tmp_path / "media"
    media.mkdir()
    slideshow(media / "a.avi", [Shot(sources["cat"][0], 2), Shot(sources["dog"][0], 2)])
    shutil.copy2(media / "a.avi", media / "b.avi")
    Image.open(sources["dog"][1]).convert("RGB").save(media / "dog.jpg")
    cli = CLI(tmp_path / "library")
    cli("index", str(media), *model_args, "-q")
    groups = cli.json("dupes")["groups"]
    assert [(g["kind"], [Path(f["path"]).name for f in g["files"]]) for g in groups] == [
        ("identical", ["a.avi", "b.avi"])
    ]
