"""What a minute of video costs to index, against photos, and whether its sampled frames find
every shot a frame-by-frame embedding finds.

    python scripts/bench_video.py [--minutes 10] [--videos 4] [--model FILE.tflite] [--keep DIR]

Writes its own videos: ``--minutes`` of 1080p at 30 fps in all, as ``--videos`` files, made of
shots of the shared photos (../shared/photos), a cut every 5 to 20 s (uniformly at random), each
shot a slow pan over its photo (so that its frames differ, as filmed ones do; the pan moves
every ``STEP`` frames, as a slideshow's does), no photo shown twice. H.264 (libx264 at preset
``ultrafast`` for speed, but with x264's default keyframe placement, a keyframe every 250 frames
and one at each scene cut, and with CABAC and the deblocking filter, which decoding pays for)
where PyAV's FFmpeg has it, else MPEG-4 part 2; ``--keyframes phone`` puts a keyframe every
second and none at cuts instead, as phones do. Then, in one run, with the shared TFLite
MobileNet and finder's own pipeline:

- ``decode_s_per_video_minute``: ``finder.ingest.video.load_video`` over every video (choosing
  and decoding the frames, no embedding), seconds per minute of video;
- ``index_s_per_video_minute``: ``Library.index`` of the videos into a new library (walk,
  decode, embed, store: everything but loading the backbone), seconds per minute of video;
- ``photo_s``: ``Library.index`` of ``--photos`` 1080p JPEGs (the shared photos resized to
  1920x1080, quality 90) into a new library the same way, seconds per photo; run before and
  after the videos, the mean of the two;
- ``photo_equivalents_per_video_minute``: ``index_s_per_video_minute / photo_s``. Bar: at most
  20 (an hour of video at most what 1,200 photos cost). The same ratio of the CPU time this
  process used (``cpu_photo_equivalents_per_video_minute``) is printed beside it: on a machine
  shared with other work it moves less than the wall-clock one.
- ``segment_recall``: each shot is queried with its photo (the original file, embedded as a
  photo): the shot is *found* by a set of frame vectors when the frame most similar to the
  photo (cosine), among the frames of all the videos, lies in that shot (same video, its time in
  [start, end)). The reference set is every frame of every video, decoded and embedded one by
  one (frame by frame: frames whose decoded pixels are identical are embedded once, which gives
  each the vector it would get alone; ``--reference-step N`` embeds every N-th frame only, for a
  quicker run on a busy machine); the sampled set is the frames the index stored.
  ``segment_recall`` is the share of the shots the reference finds that the sampled frames find
  too. Bar: >= 0.95.

The load average is printed beside the figures: the machine is shared, and each figure is
measured in the same run as the one it is compared with. Last line: JSON with ``videos``,
``video_seconds``, ``frames_embedded``, ``decode_s_per_video_minute``,
``index_s_per_video_minute``, ``photo_s``, ``photo_equivalents_per_video_minute``,
``segment_recall`` (and ``segments``, ``segments_found_by_reference``, ``probes``,
``encoder``, ``keyframes``, ``reference_step``, ``load``). On this 2-core machine the
reference is most of the run: 18,000 frames for 10 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

import av  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from finder.embed.registry import build  # noqa: E402
from finder.ingest.decode import load_views  # noqa: E402
from finder.ingest.video import load_video  # noqa: E402
from finder.library import BackboneChoice, Library  # noqa: E402

SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
WIDTH, HEIGHT, FPS = 1920, 1080, 30
MARGIN = (96, 54)  # the pan of a shot: this many pixels over the frame
STEP = 6  # frames between two moves of the pan (5 a second)


@dataclass(frozen=True)
class Segment:
    video: str
    start: float
    end: float
    photo: Path


def load() -> float:
    return os.getloadavg()[0]


#: Where the encoder puts keyframes: x264's default (every 250 frames and at scene cuts), or
#: as a phone does (every second, none at cuts).
KEYFRAMES = {"x264": "keyint=250:scenecut=40", "phone": "keyint=30:min-keyint=30:scenecut=0"}


def encoder(keyframes: str = "x264") -> tuple[str, dict[str, str]]:
    """libx264 at its fastest preset but with what the default keeps and a decoder pays for:
    the keyframes asked (``KEYFRAMES``), CABAC, the deblocking filter; else FFmpeg's MPEG-4
    part 2 (a keyframe every 12 frames, more at scene changes)."""
    try:
        av.codec.Codec("libx264", "w")
        params = f"{KEYFRAMES[keyframes]}:cabac=1:deblock=0,0"
        return "libx264", {"preset": "ultrafast", "x264-params": params}
    except Exception:
        return "mpeg4", {"qscale": "4"}


def yuv_planes(photo: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo resized to the frame plus the margin, as 4:2:0 planes."""
    im = Image.open(photo).convert("RGB").resize((WIDTH + MARGIN[0], HEIGHT + MARGIN[1]))
    y, cb, cr = im.convert("YCbCr").split()
    half = (im.width // 2, im.height // 2)
    return (
        np.asarray(y),
        np.asarray(cb.resize(half, Image.BILINEAR)),
        np.asarray(cr.resize(half, Image.BILINEAR)),
    )


def write_video(
    path: Path, seconds: float, photos: list[Path], rng: random.Random, keyframes: str = "x264"
) -> list[Segment]:
    """``seconds`` of shots of ``photos`` (used up in order), a cut every 5 to 20 s."""
    codec, options = encoder(keyframes)
    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.options = options
    total = round(seconds * FPS)
    n = 0
    segments = []
    while n < total:
        length = min(total - n, round(rng.uniform(5, 20) * FPS))
        photo = photos.pop()
        segments.append(Segment(path.name, n / FPS, (n + length) / FPS, photo))
        y, u, v = yuv_planes(photo)
        frame = None
        for k in range(length):
            if k % STEP == 0:  # the pan moves
                dx = 2 * (MARGIN[0] * k // length // 2)  # even: the chroma planes follow
                dy = 2 * (MARGIN[1] * k // length // 2)
                hx, hy = dx // 2, dy // 2
                plane = np.concatenate(
                    [
                        y[dy : dy + HEIGHT, dx : dx + WIDTH].ravel(),
                        u[hy : hy + HEIGHT // 2, hx : hx + WIDTH // 2].ravel(),
                        v[hy : hy + HEIGHT // 2, hx : hx + WIDTH // 2].ravel(),
                    ]
                ).reshape(HEIGHT * 3 // 2, WIDTH)
                frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
            n += 1
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return segments


def cpu() -> float:
    """CPU seconds this process has used (all its threads)."""
    t = os.times()
    return t.user + t.system


def index_seconds(folder: Path, library: Path, model: Path) -> tuple[float, float, dict]:
    """``Library.index`` of ``folder`` into a new ``library``, the backbone loaded first: its
    wall-clock seconds, the CPU seconds it used, its summary."""
    shutil.rmtree(library, ignore_errors=True)
    with Library(library, backbone=BackboneChoice(model=str(model))) as lib:
        lib.backbone()
        started, used = time.perf_counter(), cpu()
        summary = lib.index([str(folder)])
        took, used = time.perf_counter() - started, cpu() - used
    if summary.failed:
        sys.exit(f"bench_video: {summary.failed} files failed to index in {folder}")
    return took, used, summary.to_dict()


def stored_frames(library: Path) -> tuple[list[tuple[str, float]], np.ndarray]:
    """(video name, time) and vector of every frame the index stored."""
    with Library(library) as lib:
        rows = (
            lib.folder.open_catalog()
            .db.execute(
                "SELECT f.id, i.path, f.time FROM frames f JOIN images i ON i.id = f.video_id "
                "ORDER BY f.id"
            )
            .fetchall()
        )
        vectors = lib.folder.open_vectors().get(np.asarray([r[0] for r in rows], dtype=np.int64))
    return [(Path(os.fsdecode(bytes(p))).name, float(t)) for _, p, t in rows], vectors


def every_frame(
    videos: list[Path], backbone, step: int = 1
) -> tuple[list[tuple[str, float]], np.ndarray, int]:
    """(video name, time) and unit vector of every frame (every ``step``-th) of every video,
    decoded in a thread while the backbone embeds (the reference: frame by frame), and how many
    were embedded: a frame whose pixels are those of a frame already embedded gets that frame's
    vector."""
    w, h = backbone.info.input_size
    batches: queue.Queue = queue.Queue(maxsize=4)

    def decode() -> None:
        for path in videos:
            with av.open(str(path)) as c:
                st = c.streams.video[0]
                st.codec_context.thread_type = "AUTO"
                start = st.start_time or 0
                times, pixels = [], []
                for n, frame in enumerate(c.decode(st)):
                    if n % step:
                        continue
                    times.append(float((frame.pts - start) * st.time_base))
                    pixels.append(
                        frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")
                    )
                    if len(pixels) == 64:
                        batches.put((path.name, times, np.stack(pixels)))
                        times, pixels = [], []
                if pixels:
                    batches.put((path.name, times, np.stack(pixels)))
        batches.put(None)

    thread = threading.Thread(target=decode, daemon=True)
    thread.start()
    where: list[tuple[str, float]] = []
    rows: list[int] = []  # each frame's row among the distinct frames embedded
    seen: dict[bytes, int] = {}
    out = []
    while (item := batches.get()) is not None:
        name, times, pixels = item
        where += [(name, t) for t in times]
        new = []
        for p in pixels:
            key = hashlib.blake2b(p.tobytes(), digest_size=16).digest()
            if key not in seen:
                seen[key] = len(seen)
                new.append(p)
            rows.append(seen[key])
        if new:
            out.append(backbone.embed(np.stack(new)))
    thread.join()
    vectors = np.concatenate(out)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return where, vectors[np.asarray(rows)], len(seen)


def found(segments: list[Segment], queries: np.ndarray, where, vectors: np.ndarray) -> list[bool]:
    """For each shot: is the frame most like its photo inside it?"""
    best = np.argmax(queries @ vectors.T, axis=1)
    out = []
    for seg, b in zip(segments, best, strict=True):
        video, t = where[int(b)]
        out.append(video == seg.video and seg.start <= t < seg.end)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="video in all (default 10)")
    ap.add_argument("--videos", type=int, default=4, help="files it is split into (default 4)")
    ap.add_argument("--photos", type=int, default=120, help="1080p photos timed (default 120)")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument(
        "--keyframes",
        choices=sorted(KEYFRAMES),
        default="x264",
        help="x264: x264's default, every 250 frames and at scene cuts; phone: every second, "
        "none at cuts",
    )
    ap.add_argument(
        "--reference-step",
        type=int,
        default=1,
        metavar="N",
        help="embed every N-th frame for the reference (default 1: frame by frame)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keep",
        type=Path,
        help="work here and keep the files (else a temp dir); a later run with the same "
        "arguments reuses the videos, photos and reference embedding found there",
    )
    args = ap.parse_args()
    sources = sorted((SHARED / "photos").rglob("*.jpg"))
    if len(sources) < 100 or not args.model.is_file():
        sys.exit(f"bench_video: needs the shared photos and model under {SHARED}")
    rng = random.Random(args.seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="finder-bench-video-"))
    work.mkdir(parents=True, exist_ok=True)
    loads = [load()]
    try:
        started = time.perf_counter()
        pool = list(sources)
        rng.shuffle(pool)
        video_dir, photo_dir = work / "videos", work / "photos"
        made_with = {
            k: str(v)
            for k, v in vars(args).items()
            if k in ("minutes", "videos", "photos", "keyframes", "seed")
        }
        recorded = work / "made.json"
        segments: list[Segment] = []
        if recorded.exists() and json.loads(recorded.read_text())["args"] == made_with:
            segments = [
                Segment(v, a, b, Path(p))
                for v, a, b, p in json.loads(recorded.read_text())["shots"]
            ]
        else:
            recorded.unlink(missing_ok=True)
            (work / "reference.npz").unlink(missing_ok=True)
            shutil.rmtree(video_dir, ignore_errors=True)
            shutil.rmtree(photo_dir, ignore_errors=True)
            video_dir.mkdir()
            photo_dir.mkdir()
            seconds = args.minutes * 60 / args.videos
            for k in range(args.videos):
                path = video_dir / f"clip{k}.mp4"
                segments += write_video(path, seconds, pool, rng, args.keyframes)
            for k, photo in enumerate(pool[: args.photos]):
                im = Image.open(photo).convert("RGB").resize((WIDTH, HEIGHT), Image.LANCZOS)
                im.save(photo_dir / f"photo{k:04d}.jpg", quality=90)
            shots = [[s.video, s.start, s.end, str(s.photo)] for s in segments]
            recorded.write_text(json.dumps({"args": made_with, "shots": shots}))
        videos = sorted(video_dir.glob("*.mp4"))
        made = time.perf_counter() - started
        codec = encoder()[0]
        print(
            f"{'wrote' if made > 1 else 'reused'} {len(videos)} videos, {args.minutes:g} min "
            f"of {WIDTH}x{HEIGHT} at {FPS} fps "
            f"({codec}, keyframes: {args.keyframes}), {len(segments)} shots, and {args.photos} "
            f"1080p photos in {made:.0f} s"
        )
        minutes = args.minutes

        decode_started = time.perf_counter()
        probes = sum(load_video(v, (224, 224)).probes for v in videos)
        decode_s = time.perf_counter() - decode_started
        loads.append(load())

        photo_a, photo_cpu_a, _ = index_seconds(photo_dir, work / "lib-photos-a", args.model)
        loads.append(load())
        video_s, video_cpu, summary = index_seconds(video_dir, work / "lib-videos", args.model)
        loads.append(load())
        photo_b, photo_cpu_b, _ = index_seconds(photo_dir, work / "lib-photos-b", args.model)
        loads.append(load())
        photo_s = (photo_a + photo_b) / 2 / args.photos
        index_per_minute = video_s / minutes
        cpu_ratio = (video_cpu / minutes) / ((photo_cpu_a + photo_cpu_b) / 2 / args.photos)
        print(
            f"decode {decode_s / minutes:.2f} s a video minute ({probes} keyframes decoded); "
            f"index {index_per_minute:.2f} s a video minute ({summary['frames']} frames); "
            f"a 1080p photo {photo_s * 1000:.1f} ms ({photo_a / args.photos * 1000:.1f} before, "
            f"{photo_b / args.photos * 1000:.1f} after the videos); in CPU time, a video "
            f"minute costs {cpu_ratio:.1f} photos"
        )

        backbone = build(model=str(args.model))
        queries = np.concatenate(
            [backbone.embed(load_views(str(s.photo), backbone.info.input_size)) for s in segments]
        )
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        where_s, sampled = stored_frames(work / "lib-videos")
        ref_started = time.perf_counter()
        cache = work / "reference.npz"
        if cache.exists() and int(np.load(cache)["step"]) == args.reference_step:
            saved = np.load(cache)
            reference, distinct = saved["vectors"], int(saved["distinct"])
            where_r = [
                (str(v), float(t)) for v, t in zip(saved["videos"], saved["times"], strict=True)
            ]
        else:
            where_r, reference, distinct = every_frame(videos, backbone, args.reference_step)
            np.savez(
                cache,
                vectors=reference,
                distinct=distinct,
                step=args.reference_step,
                videos=np.asarray([v for v, _ in where_r]),
                times=np.asarray([t for _, t in where_r]),
            )
        loads.append(load())
        by_reference = found(segments, queries, where_r, reference)
        by_sample = found(segments, queries, where_s, sampled)
        both = sum(a and b for a, b in zip(by_reference, by_sample, strict=True))
        recall = both / max(1, sum(by_reference))
        missed = [
            f"{s.video}@{s.start:.1f}-{s.end:.1f}"
            for s, a, b in zip(segments, by_reference, by_sample, strict=True)
            if a and not b
        ]
        print(
            f"shots found: frame by frame {sum(by_reference)} of {len(segments)} "
            f"({len(reference)} frames, {distinct} distinct, embedded in "
            f"{time.perf_counter() - ref_started:.0f} s), "
            f"sampled {sum(by_sample)} ({len(sampled)} frames); recall {recall:.3f}"
            + (f"; missed {', '.join(missed)}" if missed else "")
        )
        result = {
            "videos": len(videos),
            "video_seconds": round(minutes * 60, 1),
            "frames_embedded": int(summary["frames"]),
            "decode_s_per_video_minute": round(decode_s / minutes, 3),
            "index_s_per_video_minute": round(index_per_minute, 3),
            "photo_s": round(photo_s, 4),
            "photo_equivalents_per_video_minute": round(index_per_minute / photo_s, 2),
            "cpu_photo_equivalents_per_video_minute": round(cpu_ratio, 2),
            "segment_recall": round(recall, 4),
            "segments": len(segments),
            "segments_found_by_reference": int(sum(by_reference)),
            "probes": probes,
            "encoder": codec,
            "keyframes": args.keyframes,
            "reference_step": args.reference_step,
            "load": [round(x, 2) for x in loads],
        }
        bars = (
            f"bars: photo-equivalents a video minute {result['photo_equivalents_per_video_minute']}"
            f" (<= 20: {'yes' if result['photo_equivalents_per_video_minute'] <= 20 else 'NO'}), "
            f"segment recall {result['segment_recall']} "
            f"(>= 0.95: {'yes' if recall >= 0.95 else 'NO'}); load average "
            f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores; "
            f"{time.perf_counter() - started:.0f} s in all"
        )
        print(bars)
        print(json.dumps(result))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
