# ruff: noqa: F811 (the fixtures of tests/test_videos.py, imported)
"""Videos in answers (issue 27, phase 3): ``find``, ``similar``, ``review`` and the filters
treat a video as one item scored by its best frame, with that frame's time; ``similar`` takes a
video and a moment; ``learn`` takes a frame (``clip.mp4@0:12``); export copies the whole file
and ``tag`` writes the video's sidecar. On the tree of ``tests/test_videos.py`` (a 12 s
cat-dog-sunflower clip as MP4, WebM and AVI made of the first photo of each kind, the photos
beside). Real PyAV, SQLite, FAISS and the shared backbone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from finder.errors import UsageError
from finder.library import Library, format_time, parse_time
from tests.conftest import CLI, TFLITE_MODEL
from tests.test_videos import indexed, sources, tree  # noqa: F401 (fixtures)

VIDEOS = ("pets.mp4", "pets.webm", "pets.avi")
SEGMENT = {"cat": (0.0, 4.0), "dog": (4.0, 8.0), "sunflower": (8.0, 12.0)}


@pytest.fixture(scope="module")
def taught(indexed, tree, tmp_path_factory) -> Path:  # noqa: F811
    """The indexed library with class ``cat`` learned from the cat photos (not the videos)."""
    if not TFLITE_MODEL.exists():
        pytest.skip(f"needs {TFLITE_MODEL} (a trained backbone), absent here")
    library = tmp_path_factory.mktemp("taught") / "library"
    import shutil

    shutil.copytree(indexed, library)
    cats = sorted(str(p) for p in (tree / "photos").glob("cat-*.jpg"))
    others = sorted(str(p) for p in (tree / "photos").glob("dog-*.jpg"))
    CLI(library)("learn", "cat", *cats, *[a for p in others for a in ("--not", p)])
    return library


def test_times_are_read_as_people_write_them() -> None:
    assert [parse_time(t) for t in ("12", "12.5", "0:12", "1:05", "1:02:03", ".5")] == [
        12,
        12.5,
        12,
        65,
        3723,
        0.5,
    ]
    assert [format_time(t) for t in (0, 12.9, 65, 3723)] == ["0:00", "0:12", "1:05", "1:02:03"]
    for bad in ("", "abc", "1:75", "-3", "1:2:3:4", "1:60:00"):
        with pytest.raises(UsageError):
            parse_time(bad)


def test_find_returns_each_video_once_at_a_cat_moment(taught, tree) -> None:
    cli = CLI(taught)
    rows = cli.json("find", "cat", "--top", "40")
    videos = [r for r in rows if r["kind"] == "video"]
    assert sorted(Path(r["path"]).name for r in videos) == sorted(VIDEOS)
    for r in videos:
        assert SEGMENT["cat"][0] <= r["time"] < SEGMENT["cat"][1], r
        assert all(m["probability"] <= r["probability"] for m in r["moments"])
    photos = [r for r in rows if r["kind"] == "photo"]
    assert photos and all("time" not in r for r in photos)
    assert len({r["path"] for r in rows}) == len(rows)  # one item a video
    # the cut-off answer: the videos are among the cats, the dog photos are not
    found = cli.json("find", "cat")
    names = {Path(r["path"]).name for r in found}
    assert set(VIDEOS) <= names and not any(n.startswith("dog-") for n in names)
    # text: path @ M:SS
    lines = cli("find", "cat").stdout.splitlines()
    shown = [line for line in lines if "pets.mp4" in line]
    assert len(shown) == 1 and shown[0].endswith(" @ 0:0" + shown[0][-1]), shown
    assert int(shown[0][-1]) < 4


def test_top_k_counts_items_not_frames(taught) -> None:
    """Frames of three videos crowd the top ids: --top 3 still gives three items."""
    with Library(taught) as lib:
        matches = lib.find("cat", top=3)
        assert len(matches) == 3 and len({m.id for m in matches}) == 3
        everything = lib.find("cat", min_prob=0.0)
        status = lib.status()
    assert len(everything) == status["images"]  # every item once, photos and videos


def test_similar_from_a_moment_finds_photos_and_moments(taught, tree, sources) -> None:  # noqa: F811
    cli = CLI(taught)
    mp4 = str(tree / "videos" / "pets.mp4")
    for args in (["similar", mp4, "--at", "0:05"], ["similar", f"{mp4}@5"]):
        rows = cli.json(*args, "--top", "6")
        names = [Path(r["path"]).name for r in rows]
        assert "pets.mp4" not in names  # the item asked about is left out
        best_photo = next(r for r in rows if r["kind"] == "photo")
        assert Path(best_photo["path"]).name.startswith("dog-"), names
        moments = [r for r in rows if r["kind"] == "video"]
        assert {Path(r["path"]).name for r in moments} == {"pets.webm", "pets.avi"}
        assert all(SEGMENT["dog"][0] <= r["time"] < SEGMENT["dog"][1] for r in moments)
    # from a photo: the videos' moments that show it
    sunflower = tree / "photos" / f"sunflower-{sources['sunflower'][0].stem}.jpg"
    rows = cli.json("similar", str(sunflower), "--top", "8")
    for r in (r for r in rows if r["kind"] == "video"):
        assert SEGMENT["sunflower"][0] <= r["time"] <= 12.0, r
    assert {Path(r["path"]).name for r in rows if r["kind"] == "video"} == set(VIDEOS)
    text = cli("similar", str(sunflower), "--top", "8").stdout
    assert any(line.endswith(("@ 0:08", "@ 0:09", "@ 0:10", "@ 0:11")) for line in text.split("\n"))


def test_similar_on_a_video_needs_a_moment(taught, tree) -> None:
    cli = CLI(taught)
    mp4 = str(tree / "videos" / "pets.mp4")
    result = cli("similar", mp4, ok=False)
    assert result.exit_code != 0 and "--at" in result.stderr and "Traceback" not in result.stderr
    result = cli("similar", mp4, "--at", "1:75", ok=False)
    assert result.exit_code != 0 and result.stderr.count("\n") == 1 and "--at" in result.stderr


def test_similar_from_a_video_outside_the_library(taught, tree, tmp_path) -> None:
    """A video not indexed: its frame at that moment is decoded and embedded now."""
    import shutil

    clip = tmp_path / "outside.webm"
    shutil.copy(tree / "videos" / "pets.webm", clip)
    rows = CLI(taught).json("similar", str(clip), "--at", "9", "--top", "4")
    best_photo = next(r for r in rows if r["kind"] == "photo")
    assert Path(best_photo["path"]).name.startswith("sunflower-")


def test_filters_pass_a_frame_when_its_video_passes(taught, tree) -> None:
    cli = CLI(taught)
    rows = cli.json("find", "cat", "--under", str(tree / "videos"), "--top", "10")
    assert sorted(Path(r["path"]).name for r in rows) == sorted(VIDEOS)
    assert all(r["kind"] == "video" and r["time"] < 4 for r in rows)
    rows = cli.json("find", "cat", "--under", str(tree / "photos"), "--top", "100")
    assert rows and all(r["kind"] == "photo" for r in rows)
    mp4 = str(tree / "videos" / "pets.mp4")
    rows = cli.json("similar", mp4, "--at", "5", "--under", str(tree / "videos"))
    assert sorted(Path(r["path"]).name for r in rows) == ["pets.avi", "pets.webm"]


def test_learn_from_a_frame(taught, tree, tmp_path) -> None:
    """``learn dog clip.mp4@0:05``: the frame nearest 0:05 is the example, from the store."""
    import shutil

    library = tmp_path / "library"
    shutil.copytree(taught, library)
    cli = CLI(library)
    mp4 = str(tree / "videos" / "pets.mp4")
    cats = sorted(str(p) for p in (tree / "photos").glob("cat-*.jpg"))
    record = cli.json("learn", "dog", f"{mp4}@0:05", "--not", f"{mp4}@1", "--not", cats[0])
    assert record["examples"] == 1 and record["negatives"] == 2
    examples = cli.json("classes", "--examples", "dog")
    keys = [e["path"] for e in examples]
    assert any(k.startswith(mp4 + "@") for k in keys)
    with Library(library) as lib:
        marks = lib.marks("dog")
        video = lib.folder.open_catalog().image_by_path(mp4).id
        frames = dict(lib.folder.open_catalog().frames_of(video))
        framed = [m for m in marks if m.path.startswith(mp4 + "@")]
        assert len(framed) == 2 and all(m.id in frames for m in framed)
        times = sorted(frames[m.id] for m in framed)
        assert times[0] < 4 <= times[1] < 8  # a cat moment, a dog moment
        found = lib.find("dog", top=6)
    dogs = [Path(m.path).name for m in found if m.kind == "photo"]
    assert dogs and dogs[0].startswith("dog-")
    # an unindexed or not-a-video moment is one clear line
    result = cli("learn", "dog", f"{cats[0]}@3", ok=False)
    assert result.exit_code != 0 and "not an indexed video" in result.stderr
    result = cli("learn", "dog", mp4, ok=False)
    assert result.exit_code != 0 and f"{mp4}@0:12" in result.stderr
    assert result.stderr.count("\n") == 1


def test_review_asks_about_a_video_once(taught) -> None:
    with Library(taught) as lib:
        asked = lib.review("cat", 20)
    ids = [m.id for m in asked]
    assert len(ids) == len(set(ids))
    for m in asked:
        assert (m.kind == "video") == (m.time is not None) and not m.moments


def test_a_strip_asks_about_a_video_once_by_its_frame(taught, tmp_path) -> None:
    import shutil

    library = tmp_path / "lib"
    shutil.copytree(taught, library)  # the strip is remembered: the module's library unchanged
    with Library(library) as lib:
        strip = lib.strip("cat", 20)
        keys = [m.key for m in strip.photos]
        assert len(keys) == len(set(keys)) == len({m.id for m in strip.photos})
        videos = [m for m in strip.photos if m.kind == "video"]
        assert videos and all(m.frame is not None and not m.moments for m in videos)
        # a video's strip tile is its frame: marking it by that id marks the moment
        lib.learn_ids("cat", [videos[0].key], [])
        assert videos[0].key in {m.id for m in lib.marks("cat")}
        assert videos[0].key not in {m.key for m in lib.strip("cat", 20).photos}


def test_export_copies_the_whole_video_and_tag_writes_its_sidecar(taught, tree, tmp_path):
    cli = CLI(taught)
    out = tmp_path / "out"
    cli("find", "cat", "--under", str(tree / "videos"), "--top", "3", "--copy", str(out))
    for name in VIDEOS:
        assert (out / name).read_bytes() == (tree / "videos" / name).read_bytes()
    media = tmp_path / "media"
    import shutil

    shutil.copytree(tree / "videos", media)
    library = tmp_path / "lib2"
    shutil.copytree(taught, library)
    cli2 = CLI(library)
    cli2("index", str(media), "-q")
    done = cli2.json("tag", "cat", "--under", str(media))
    sidecars = sorted(Path(d["sidecar"]).name for d in done)
    assert sidecars == sorted(f"{v}.xmp" for v in VIDEOS)
    text = (media / "pets.mp4.xmp").read_text()
    assert "cat" in text and os.path.getsize(media / "pets.mp4") > 0


def test_status_counts_a_video_as_one_item(taught, tree) -> None:
    status = CLI(taught).json("status")
    with Library(taught) as lib:
        n = (
            lib.folder.open_catalog()
            .db.execute("SELECT count(*) FROM images WHERE status = 'ok'")
            .fetchone()[0]
        )
    assert status["images"] == n and status["videos"] == 3
    assert status["frames"] > status["videos"]
    assert np.isfinite(status["frames"])


def test_dupes_groups_a_clip_re_encoded(taught, tree, sources, tmp_path) -> None:
    """pets.mp4, .webm and .avi are one clip in three codecs: one near-duplicate group, where
    their frames line up; a clip as long made of the same shots in another order is not in it."""
    import shutil

    from tests.ingest.videos import Shot, slideshow

    library = tmp_path / "library"
    shutil.copytree(taught, library)
    other = tmp_path / "other"
    other.mkdir()
    shots = [Shot(sources[k][0], 4) for k in ("sunflower", "cat", "dog")]
    slideshow(other / "shuffled.webm", shots)
    cli = CLI(library)
    cli("index", str(other), "-q")
    groups = cli.json("dupes")["groups"]
    with_videos = [g for g in groups if any(Path(f["path"]).suffix == ".webm" for f in g["files"])]
    assert len(with_videos) == 1, with_videos
    group = with_videos[0]
    assert group["kind"] == "near" and group["similarity"] >= 0.85
    assert sorted(Path(f["path"]).name for f in group["files"]) == sorted(VIDEOS)
    under = cli.json("dupes", "--under", str(tree / "videos"))["groups"]
    assert [sorted(Path(f["path"]).name for f in g["files"]) for g in under] == [sorted(VIDEOS)]


def test_a_new_video_is_among_the_new_finds_of_a_class_at_its_best_moment(taught) -> None:
    """The page's live note ("1 new photo of cat") and a class page's re-rank come from
    ``/api/changes``' ``classes``: a video embedded since the page was shown is there once for
    each class that finds one of its moments, by the frame its card on the class page shows
    (its best for that class), as photos are by their id; and it agrees with ``find``."""
    from tests.show.test_web import TOKEN, Server

    server = Server(taught)
    try:
        r = server.client.get("/api/changes", params={"since": "page:0.0", "token": TOKEN})
        assert r.status_code == 200, r.text
        live = r.json()
    finally:
        server.stop()
    assert not live["again"]
    told = live["classes"]["cat"]
    assert len(told) == len(set(told))
    with Library(taught) as lib:
        found = lib.find("cat")
        videos = [m for m in found if m.kind == "video"]
        assert len(videos) == len(VIDEOS)
        assert {m.id for m in videos} <= set(live["added"])  # the videos arrived...
        assert not {m.id for m in videos} & set(told)  # ...and are named by a moment
        catalog = lib.folder.open_catalog()
        for m in videos:
            frames = {f for f, _ in catalog.frames_of(m.id)}
            (moment,) = frames & set(told)  # once a video
            prob = {name: p for name, p, _ in lib.class_scores(moment)}["cat"]
            assert prob == pytest.approx(m.score, abs=1e-5)  # its best moment (ties aside)
        photos = {m.id for m in found if m.kind == "photo"}
        assert set(told) - photos == {m for m in told if catalog.frame_rows([m])}
        assert photos <= set(told)
        # the watcher's lines count a video once too
        assert len(told) == len(found)
