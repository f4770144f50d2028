"""finder.ingest.video: videos the tests write with PyAV (H.264 or MPEG-4 in MP4, VP9 in WebM,
MJPEG in AVI), read back at their keyframes: a frame in every shot, at the right time, upright,
with the container's facts; every bad video a ``DecodeError`` with its reason.

The shots are photos of ../shared/photos (cats, dogs, sunflowers) when it is there, else
generated ones (``make_photo``: red discs, blue stripes, green squares), so that these tests
run anywhere."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from finder.errors import DecodeError
from finder.ingest.video import MAX_VIDEO_PIXELS, load_frame_at, load_video, read_video_facts
from finder.ingest.video_sample import distance, signature
from tests.conftest import PHOTOS
from tests.ingest.videos import Shot, h264_codec, has_encoder, slideshow
from tests.ingest.videos import sources as photo_sources

SIZE = (224, 224)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three photos of each kind: the shared cats, dogs and sunflowers, else generated ones."""
    return photo_sources(PHOTOS, tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory, sources) -> dict[str, tuple[Path, list[tuple[float, float]]]]:
    """12 s: 4 s of a cat, 4 s of a dog, 4 s of a sunflower, as MP4 (H.264, else MPEG-4),
    WebM (VP9) and AVI (MJPEG); each with its shots' spans."""
    d = tmp_path_factory.mktemp("videos")
    shots = [Shot(sources[k][0], 4) for k in ("cat", "dog", "sunflower")]
    out = {}
    for ext in ("mp4", "webm", "avi"):
        path = d / f"pets.{ext}"
        out[ext] = (path, slideshow(path, shots))
    return out


def shot_of(t: float, spans: list[tuple[float, float]]) -> int:
    return next(i for i, (a, b) in enumerate(spans) if a <= t < b)


def looks_like(pixels: np.ndarray, photos: list[Path]) -> int:
    """The index of the photo the frame looks most like (by the sampler's own signature)."""
    want = signature(pixels)
    refs = [signature(np.asarray(Image.open(p).convert("RGB").resize(SIZE))) for p in photos]
    return int(np.argmin([distance(want, r) for r in refs]))


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
def test_every_shot_has_a_frame_at_its_time(ext, videos, sources) -> None:
    path, spans = videos[ext]
    sample = load_video(path, SIZE)
    assert sample.pixels.dtype == np.uint8 and sample.pixels.shape[1:] == (1, 224, 224, 3)
    assert len(sample.times) == len(sample.pixels) and sample.probes >= len(sample.times)
    assert list(sample.times) == sorted(sample.times)
    assert all(0 <= t < 12 for t in sample.times)
    shots = [shot_of(t, spans) for t in sample.times]
    assert set(shots) == {0, 1, 2}, sample.times
    # each frame shows the photo of the shot its time falls in
    firsts = [sources[k][0] for k in ("cat", "dog", "sunflower")]
    for t, pixels, shot in zip(sample.times, sample.pixels, shots, strict=True):
        assert looks_like(pixels[0], firsts) == shot, t
    assert sample.facts.duration == pytest.approx(12, abs=0.3)
    assert (sample.facts.width, sample.facts.height) == (320, 240)


@pytest.mark.parametrize("ext, options", [("mts", {}), ("m2ts", {"mpegts_m2ts_mode": "1"})])
def test_camcorder_transport_streams(ext, options, tmp_path, sources) -> None:
    """AVCHD camcorders' ``.mts`` / ``.m2ts`` (MPEG-TS, no index): read in order, keyframes
    only, a frame in every shot."""
    shots = [Shot(sources[k][0], 4) for k in ("cat", "dog", "sunflower")]
    path = tmp_path / f"cam.{ext}"
    spans = slideshow(path, shots, container="mpegts", container_options=options)
    sample = load_video(path, SIZE)
    assert {shot_of(t, spans) for t in sample.times} == {0, 1, 2}, sample.times


def test_a_hard_cut_every_second_gives_a_frame_a_second(tmp_path, sources) -> None:
    photos = [sources[k][i] for i in range(3) for k in ("cat", "dog", "sunflower")]
    shots = [Shot(photos[i % len(photos)], 1) for i in range(12)]  # a cat, a dog, a flower, ...
    for ext in ("avi", "mp4"):  # every frame a keyframe; a keyframe a second
        spans = slideshow(tmp_path / f"cuts.{ext}", shots)
        sample = load_video(tmp_path / f"cuts.{ext}", SIZE)
        assert sorted(shot_of(t, spans) for t in sample.times) == list(range(12)), ext


def test_cuts_the_encoder_marked_are_found_between_sparse_keyframes(tmp_path, sources) -> None:
    """x264 as editors use it: a keyframe every 10 s, and one at each scene cut (scenecut):
    the cut's keyframe comes early, out of the rhythm, and is read."""
    if not has_encoder("libx264"):
        pytest.skip("PyAV's FFmpeg has no libx264 here")
    shots = [Shot(sources["cat"][0], 13), Shot(sources["dog"][0], 2), Shot(sources["cat"][1], 9)]
    options = {"g": "50", "x264-params": "keyint=50:min-keyint=2:scenecut=40"}
    spans = slideshow(tmp_path / "edit.mp4", shots, options=options)
    c = av.open(str(tmp_path / "edit.mp4"))
    st = c.streams.video[0]
    keys = [float(p.pts * st.time_base) for p in c.demux(st) if p.is_keyframe and p.pts is not None]
    c.close()
    assert any(spans[1][0] <= k < spans[1][1] for k in keys), keys  # the encoder marked the cut
    sample = load_video(tmp_path / "edit.mp4", SIZE)
    assert {shot_of(t, spans) for t in sample.times} == {0, 1, 2}, (sample.times, keys)


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
def test_the_frame_at_a_moment(ext, videos, sources) -> None:
    """``load_frame_at``: the frame shown at a time (a teaching example, a moment's still):
    from the keyframe before it, decoded up to it."""
    path, spans = videos[ext]
    firsts = [sources[k][0] for k in ("cat", "dog", "sunflower")]
    for seconds in (0.0, 3.3, 6.5, 9.9, 11.9, 30.0):
        t, pixels = load_frame_at(path, seconds, SIZE)
        assert pixels.shape == (1, 224, 224, 3)
        assert t <= seconds and (t > seconds - 0.21 or seconds > 12)  # 5 fps: within a frame
        assert looks_like(pixels[0], firsts) == shot_of(min(seconds, 11.9), spans), seconds


def test_an_intra_frame_no_keyframe_mark_names_is_found(tmp_path, sources) -> None:
    """x264 codes a cut too soon after a keyframe (within min-keyint) as an intra frame that
    neither MP4's index nor its packet marks as a keyframe (no recovery point): finder decodes
    frames as large as keyframes on their own, and keeps those that are intra."""
    if not has_encoder("libx264"):
        pytest.skip("PyAV's FFmpeg has no libx264 here")
    shots = [Shot(sources["cat"][0], 11), Shot(sources["dog"][0], 3), Shot(sources["cat"][1], 8)]
    options = {"x264-params": "keyint=50:min-keyint=25:scenecut=40"}
    spans = slideshow(tmp_path / "soon.mp4", shots, options=options)
    c = av.open(str(tmp_path / "soon.mp4"))
    st = c.streams.video[0]
    e = st.index_entries
    marked = [float(e[i].timestamp * st.time_base) for i in range(len(e)) if e[i].flags & 1]
    packets = [float(p.pts * st.time_base) for p in c.demux(st) if p.is_keyframe and p.size]
    c.close()
    assert not any(11 <= t < 14 for t in marked + packets), (marked, packets)
    sample = load_video(tmp_path / "soon.mp4", SIZE)
    assert {shot_of(t, spans) for t in sample.times} == {0, 1, 2}, sample.times


def test_views_and_sizes(videos) -> None:
    path, _ = videos["mp4"]
    one = load_video(path, SIZE, views=1)
    two = load_video(path, SIZE, views=2)
    np.testing.assert_array_equal(two.pixels[:, 0], one.pixels[:, 0])
    np.testing.assert_array_equal(two.pixels[:, 1], one.pixels[:, 0, :, ::-1])
    four = load_video(path, (96, 64), views=4)
    assert four.pixels.shape[1:] == (4, 64, 96, 3)
    np.testing.assert_allclose(four.times, one.times)


def test_portrait_video_is_turned_upright(tmp_path) -> None:
    """A phone's portrait video: frames stored landscape, a display matrix turning them. The
    red corner of the stored frame is where the matrix puts it, and the size is as shown."""
    stored = np.full((120, 160, 3), 230, np.uint8)
    stored[:60, :80] = (220, 20, 20)  # red top-left quarter, as stored
    slideshow(tmp_path / "portrait.mov", [Shot(stored, 2)], size=(160, 120), rotation=90)
    sample = load_video(tmp_path / "portrait.mov", (60, 80))
    frame = sample.pixels[0, 0].astype(int)
    assert frame.shape == (80, 60, 3)
    # turned 90° counterclockwise (PyAV's and FFmpeg's display rotation): the stored top-left
    # corner is now at the bottom left
    assert frame[70, 10, 0] > 180 and frame[70, 10, 1] < 80
    assert frame[10, 10, 1] > 180 and frame[10, 50, 1] > 180 and frame[70, 50, 1] > 180
    assert (sample.facts.width, sample.facts.height) == (120, 160)


def test_facts_from_the_container(tmp_path, sources) -> None:
    meta = {
        "creation_time": "2019-06-01T10:30:05.000000Z",
        "location": "+48.8584+002.2945+035.000/",
        "make": "Apple",
        "model": "iPhone 12",
    }
    slideshow(tmp_path / "trip.mov", [Shot(sources["cat"][0], 2)], metadata=meta)
    facts = read_video_facts(tmp_path / "trip.mov")
    assert (facts.lat, facts.lon) == (48.8584, 2.2945)
    assert (facts.make, facts.model) == ("Apple", "iPhone 12")
    assert facts.date_source == "container" and facts.duration == pytest.approx(2, abs=0.3)
    # an instant in UTC, shown in this machine's zone with its offset: the same instant
    from datetime import datetime, timezone

    shown = datetime.fromisoformat(facts.taken_iso)
    assert shown == datetime(2019, 6, 1, 10, 30, 5, tzinfo=timezone.utc)
    assert load_video(tmp_path / "trip.mov", SIZE).facts == facts


def test_apple_local_date_keeps_its_zone(tmp_path, sources) -> None:
    meta = {"com.apple.quicktime.creationdate": "2019-06-01T12:30:05+0200"}
    slideshow(tmp_path / "iphone.mkv", [Shot(sources["dog"][0], 1)], metadata=meta)
    facts = read_video_facts(tmp_path / "iphone.mkv")
    assert (facts.taken, facts.offset_minutes) == ("2019-06-01T12:30:05", 120)


def test_a_video_without_a_date_has_its_file_date(videos) -> None:
    facts = read_video_facts(videos["webm"][0])
    assert facts.date_source == "file" and facts.taken is not None and facts.lat is None


# -- bad videos -----------------------------------------------------------------------------
def reason(path: Path) -> str:
    with pytest.raises(DecodeError) as e:
        load_video(path, SIZE)
    text = str(e.value)
    assert text and "\n" not in text and len(text) <= 120
    return text


def test_empty_and_not_videos(tmp_path, sources) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert reason(tmp_path / "empty.mp4") == "empty file"
    (tmp_path / "text.mkv").write_text("not a video at all\n" * 50)
    assert reason(tmp_path / "text.mkv") == "not a video"
    Image.open(sources["cat"][0]).convert("RGB").save(tmp_path / "photo.mp4", "JPEG")
    assert reason(tmp_path / "photo.mp4") == "not a video"
    assert reason(tmp_path / "missing.mp4") == "file vanished"
    assert reason(tmp_path) == "is a directory"


def test_no_video_stream(tmp_path) -> None:
    out = av.open(str(tmp_path / "voice.mp4"), "w")
    stream = out.add_stream("aac", rate=44100)
    for i in range(10):
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate, frame.pts = 44100, i * 1024
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    assert reason(tmp_path / "voice.mp4") == "no video stream"


def test_codec_ffmpeg_cannot_read(tmp_path, videos) -> None:
    data = videos["avi"][0].read_bytes()
    assert data.count(b"MJPG") >= 1
    (tmp_path / "odd.avi").write_bytes(data.replace(b"MJPG", b"QZQZ"))
    assert reason(tmp_path / "odd.avi") == "no decoder for this video's codec"


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
def test_truncated(tmp_path, videos, ext) -> None:
    data = videos[ext][0].read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    assert reason(cut).startswith("truncated")


def test_truncated_with_the_index_first(tmp_path, sources) -> None:
    """An MP4 written for streaming (``faststart``: the index before the frames), cut short:
    its index points past the end."""
    path = tmp_path / "fast.mp4"
    shots = [Shot(sources["cat"][0], 3), Shot(sources["dog"][0], 3)]
    slideshow(path, shots, container_options={"movflags": "faststart"})
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    cut = tmp_path / "fastcut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert reason(cut) == "truncated"


def test_header_claiming_100000_frames_of_20000x20000(tmp_path, videos) -> None:
    """An AVI whose headers claim 100,000 frames of 20000x20000 (its frames are small): it
    fails, with its reason, having decoded nothing large (FFmpeg reads the frames' true size;
    the frame count nothing allocates for)."""
    data = bytearray(videos["avi"][0].read_bytes())
    avih = data.find(b"avih") + 8
    struct.pack_into("<I", data, avih + 16, 100_000)  # dwTotalFrames
    struct.pack_into("<II", data, avih + 32, 20_000, 20_000)  # dwWidth, dwHeight
    strh = data.find(b"strh") + 8
    struct.pack_into("<I", data, strh + 32, 100_000)  # dwLength
    strf = data.find(b"strf") + 8
    struct.pack_into("<ii", data, strf + 4, 20_000, 20_000)  # biWidth, biHeight
    (tmp_path / "claims.avi").write_bytes(bytes(data))
    assert reason(tmp_path / "claims.avi") == (
        "truncated (holds 60 of the 100000 frames its header claims)"
    )


def test_frames_too_large_are_a_decompression_bomb(tmp_path) -> None:
    """Frames over MAX_VIDEO_PIXELS (just past 8K) are refused from the header, before any is
    decoded."""
    if not has_encoder(h264_codec()):
        pytest.skip("no H.264 or MPEG-4 encoder")
    w, h = 8192, 4608
    assert w * h > MAX_VIDEO_PIXELS
    black = np.zeros((h, w, 3), np.uint8)
    slideshow(tmp_path / "huge.mp4", [Shot(black, 0.2)], size=(w, h), fps=5)
    assert reason(tmp_path / "huge.mp4") == f"decompression bomb ({w}x{h} frames)"
