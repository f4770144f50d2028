"""Any video file → the frames worth embedding, as RGB uint8 at the backbone's size, each with
its time in seconds, and the facts its container gives.

``load_video(path, size, views)`` is the entry point (``read_video_facts`` reads the facts
alone). It reads the file through PyAV (FFmpeg's libraries; imported on the first video):

1. Opens the file itself (``files.open_regular``) and lets FFmpeg identify it by its content,
   among the video containers only (``VIDEO_FORMATS``: MP4/MOV/3GP/M4V, Matroska/WebM, AVI,
   MPEG-TS for ``.mts``/``.m2ts``): a JPEG named ``.mp4`` is "not a video". The first video
   stream that is not a cover picture is read; none is "no video stream", a codec FFmpeg has
   no decoder for is "no decoder for this video's codec".
2. Refuses frames over ``MAX_VIDEO_PIXELS`` (8K fits) as "decompression bomb", from the header
   before any decoding, and again in the decoder (FFmpeg's ``max_pixels``) for a stream whose
   frames are larger than its header says: decoding memory stays bounded whatever the file
   claims (the number of frames a header claims costs nothing: frames are never counted ahead).
3. Decodes **keyframes only** (each decodes on its own, without the frames before it), and
   only those the :class:`~finder.ingest.video_sample.Sampler` asks for (scene changes, a
   steady pace, a cap: see :mod:`finder.ingest.video_sample`). Where the container has an
   index that lists every frame (MP4/MOV, AVI) the reader seeks from keyframe to keyframe and
   reads nothing else; otherwise (Matroska, whose cues list keyframes only, MPEG-TS, an index
   cut off) it reads the packets in order and decodes only the keyframes it wants. A frame
   as large as a keyframe (half their median size) that no mark calls one is decoded on its
   own too (FFmpeg's ``showall``) and kept when it is intra: x264 codes a scene cut that comes
   too soon after a keyframe that way, and nothing but its size tells. Each frame is scaled
   by FFmpeg (swscale, area averaging) straight from its decoded planes to the size asked,
   and turned upright by the stream's display matrix (a phone's portrait video). MJPEG
   frames are decoded at reduced scale (FFmpeg's ``lowres``) when still at least the size
   asked.
4. Checks the file is whole: an index pointing past the end of the file, an MP4 whose boxes
   run past it, a Matroska or AVI file whose packets end well before the duration its header
   gives are "truncated".

Every failure is one ``DecodeError`` whose ``str`` is a short reason; no other exception leaves.
A stream where no keyframe decodes is a failure too, never an item without frames.

Cost: a keyframe's decode plus a 1-2 ms scale per frame looked at; a steady-paced minute looks
at about 12 to 20 keyframes (``scripts/bench_video.py`` measures it against photos).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import numpy as np

from finder.errors import DecodeError
from finder.ingest.decode import check_views, make_views, view_cover
from finder.ingest.files import open_regular, os_error_reason
from finder.ingest.video_facts import VideoFacts, video_facts
from finder.ingest.video_reasons import ffmpeg_reason, open_reason, short
from finder.ingest.video_sample import SAMPLING, Sampler, Sampling

#: Largest frame accepted, in pixels: 8K UHD (7680x4320, 33 MP) and DCI 8K (8192x4320) fit.
MAX_VIDEO_PIXELS = 36_000_000
#: FFmpeg demuxers that read the containers of ``crawl.VIDEO_EXTENSIONS``.
VIDEO_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts"})
#: Containers whose header gives a duration the packets must reach (else "truncated").
_DURATION_CHECKED = frozenset({"matroska,webm", "avi"})
#: Codecs FFmpeg decodes at 1/2, 1/4, 1/8 scale (``lowres``), with the most it allows.
_LOWRES = {"mjpeg": 3}
_KEYFRAME = 1  # AVINDEX_KEYFRAME
#: A frame the index does not mark as a keyframe but at least this share of the keyframes'
#: median size is looked at (its packet may say it is one: x264's intra frame at a scene cut
#: too soon after the last keyframe to be one the index knows).
_INTRA_SIZE = 0.5
_INTRA = 1  # AV_PICTURE_TYPE_I
#: An index whose last entry ends this long before the stream does is incomplete (Matroska's
#: cues list keyframes only, a fragmented MP4's index grows as it is read): the packets are
#: read in order instead. MP4's and AVI's indexes list every frame.
_INDEX_SLACK = (1.0, 0.02)  # seconds, or this share of the duration, whichever is larger

T = TypeVar("T")


@dataclass(frozen=True)
class VideoSample:
    """The frames chosen from one video: ``times`` (seconds from the start, float64, one per
    frame), ``pixels`` (uint8 ``(frames, views, height, width, 3)``), the video's ``facts``, and
    ``probes``, the frames decoded to choose them."""

    times: np.ndarray
    pixels: np.ndarray
    facts: VideoFacts
    probes: int


def _av() -> Any:
    import av

    return av


def load_video(
    path: str | os.PathLike[str],
    size: tuple[int, int],
    views: int = 1,
    sampling: Sampling = SAMPLING,
) -> VideoSample:
    """The sampled frames of the video at ``path``, each as ``views`` views at ``size`` (width,
    height) as ``decode.load_views`` makes them, with their times and the video's facts.
    Raises ``DecodeError`` with a short reason for every way the file can be bad."""
    check_views(views)
    width, height = (int(v) for v in size)
    return _opened(path, lambda video: _sample(video, (width, height), views, sampling))


def load_frame_at(
    path: str | os.PathLike[str], seconds: float, size: tuple[int, int], views: int = 1
) -> tuple[float, np.ndarray]:
    """The frame shown at ``seconds`` from the start (the last one that starts at or before it;
    the last frame past the end), as ``views`` views at ``size`` like ``load_video``'s, with
    its own time. Decodes from the keyframe before it (a teaching example ``clip.mp4@0:12``, a
    moment's thumbnail). Raises ``DecodeError`` like ``load_video``."""
    check_views(views)
    width, height = (int(v) for v in size)
    return _opened(path, lambda video: video.frame_at(float(seconds), (width, height), views))


def load_still(path: str | os.PathLike[str], seconds: float, short_side: int) -> np.ndarray:
    """The frame shown at ``seconds`` as RGB uint8, upright, its aspect kept, its short side
    ``short_side`` pixels (a moment's thumbnail). Raises ``DecodeError`` like ``load_video``."""
    side = int(short_side)
    return _opened(path, lambda video: video.frame_at(float(seconds), (side, side), 1, 1.0)[1])


def stream_kind(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(FFmpeg's demuxer name, the video codec's name) of the video at ``path``, read from its
    header: whether a browser can play it. Raises ``DecodeError`` like ``load_video``."""
    return _opened(path, lambda video: (str(video.container.format.name), str(video.cc.name)))


def read_video_facts(path: str | os.PathLike[str]) -> VideoFacts:
    """The facts of the video at ``path`` (its first keyframe is decoded, for the way it is
    turned). Raises ``DecodeError`` like ``load_video``."""
    return _opened(path, lambda video: video.facts(video.first_rotation()))


def _opened(path: str | os.PathLike[str], action: Callable[[_Video], T]) -> T:
    """Open ``path`` as a video and run ``action`` on it; every failure is a ``DecodeError``."""
    f = open_regular(path)
    with f:
        try:
            nbytes = os.fstat(f.fileno()).st_size
            head = f.read(16)
            f.seek(0)
        except OSError as e:
            raise DecodeError(os_error_reason(e)) from None
        if not head:
            raise DecodeError("empty file")
        av = _av()
        try:
            container = av.open(f, "r")
        except MemoryError:
            raise DecodeError("out of memory") from None
        except (av.FFmpegError, ValueError, OSError) as e:
            raise DecodeError(open_reason(f, head, nbytes, e, av.FFmpegError)) from None
        try:
            return action(_Video(container, f, nbytes))
        except DecodeError:
            raise
        except MemoryError:
            raise DecodeError("out of memory") from None
        except av.DecoderNotFoundError:
            raise DecodeError("no decoder for this video's codec") from None
        except av.FFmpegError as e:
            raise DecodeError(ffmpeg_reason(e)) from None
        except Exception as e:  # a demuxer or decoder bug on one odd file must not stop a run
            raise DecodeError(short(f"corrupt video: {str(e) or type(e).__name__}")) from None
        finally:
            container.close()


class _Video:
    """An opened video: its container, the stream read, what the header says."""

    def __init__(self, container: Any, f: BinaryIO, nbytes: int) -> None:
        av = _av()
        if container.format.name not in VIDEO_FORMATS:
            raise DecodeError("not a video")
        streams = [
            s
            for s in container.streams.video
            if not int(s.disposition) & int(av.stream.Disposition.attached_pic)
        ]
        if not streams:
            raise DecodeError("no video stream")
        self.container = container
        self.stream = st = streams[0]
        self.nbytes = nbytes
        self.file = f
        cc = st.codec_context
        if cc is None:
            raise DecodeError("no decoder for this video's codec")
        self.cc = cc
        self.width, self.height = int(cc.width or 0), int(cc.height or 0)
        if self.width * self.height > MAX_VIDEO_PIXELS:
            raise DecodeError(f"decompression bomb ({self.width}x{self.height} frames)")
        self.time_base = st.time_base
        self.start = int(st.start_time) if st.start_time is not None else 0
        self.duration = _duration(container, st)
        cc.options = {"max_pixels": str(MAX_VIDEO_PIXELS), "flags2": "+showall"}

    def seconds(self, ts: int) -> float:
        return float((ts - self.start) * self.time_base)

    def facts(self, rotation: int) -> VideoFacts:
        """The facts of the container, the size as shown (turned by ``rotation`` degrees)."""
        w, h = self.width, self.height
        sar = self.cc.sample_aspect_ratio
        if sar is not None and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
            w = max(1, round(w * float(sar)))
        if _quarter_turns(rotation) % 2:
            w, h = h, w
        try:
            mtime_ns = os.fstat(self.file.fileno()).st_mtime_ns
        except (OSError, ValueError):
            mtime_ns = None
        meta: dict[str, str] = {}
        for tags in (self.stream.metadata, self.container.metadata):
            try:
                meta.update(tags)
            except (UnicodeDecodeError, ValueError):  # tags not in UTF-8: none of them
                pass
        return video_facts(meta, width=w, height=h, duration=self.duration, mtime_ns=mtime_ns)

    def lowres_for(self, want: tuple[int, int]) -> None:
        """Let an MJPEG decoder decode at 1/2, 1/4 or 1/8 scale while at least ``want``."""
        most = _LOWRES.get(self.cc.name, 0)
        if not most or not self.width or not self.height or self.cc.is_open:
            return
        k = 0
        while (
            k < most
            and min(self.width >> (k + 1), self.height >> (k + 1)) >= 1
            and (self.width >> (k + 1) >= want[0] and self.height >> (k + 1) >= want[1])
        ):
            k += 1
        self.cc.options = {**self.cc.options, "lowres": str(k)}

    # -- keyframes ---------------------------------------------------------------------------
    def index_keys(self) -> list[tuple[int, bool]] | None:
        """From the container's index, in order: the keyframes' timestamps (``True``) and the
        frames as large as keyframes that the index does not mark (``False``: an encoder's
        extra intra frame at a scene cut, which only its packet marks as a keyframe); None when
        there is no index or it ends well before the stream (then the packets are read in
        order). Raises "truncated" when the index points past the end of the file."""
        entries = self.stream.index_entries
        n = len(entries)
        stamps = np.empty(n, dtype=np.int64)
        sizes = np.empty(n, dtype=np.int64)
        flags = np.empty(n, dtype=np.int64)
        end = 0
        for i in range(n):
            e = entries[i]
            stamps[i], sizes[i], flags[i] = e.timestamp, e.size, e.flags
            if e.size > 0:
                end = max(end, int(e.pos) + int(e.size))
        if end > self.nbytes:
            raise DecodeError("truncated")
        key = (flags & _KEYFRAME) != 0
        if not key.any():
            return None
        last = self.seconds(int(stamps[-1]))
        if self.duration is not None:
            slack = max(_INDEX_SLACK[0], _INDEX_SLACK[1] * self.duration)
            if last < self.duration - slack:
                return None
        large = ~key & (sizes >= _INTRA_SIZE * float(np.median(sizes[key])))
        chosen = np.flatnonzero(key | large)
        return sorted({(int(stamps[i]), bool(key[i])) for i in chosen})

    def packets_at(
        self, keys: list[tuple[int, bool]], wants: Callable[[float], bool]
    ) -> Iterator[tuple[Any, bool]]:
        """The packets to decode at the index's timestamps ``keys``, by seeking to each, with
        whether each is a keyframe: the keyframes ``wants`` (their time in seconds) asks for,
        and each frame the index does not mark, read first (one packet): a keyframe by its
        packet is asked for as the others, else it is yielded as ``False``, a frame that may be
        intra (``decode(intra_only=True)`` tells, and only then is ``wants`` asked)."""
        last = -math.inf  # the latest packet read: never read one twice, never go back
        for ts, marked in keys:
            if ts <= last or (marked and not wants(self.seconds(ts))):
                continue
            # a keyframe: the first whose presentation time is at or after ts, this one (an
            # index gives decoding times, at most the presentation time); another frame: itself
            self.container.seek(ts, stream=self.stream, backward=not marked, any_frame=not marked)
            for packet in self.container.demux(self.stream):
                if packet.size == 0:
                    break  # the end of the file
                stamp = _stamp(packet)
                decoded_at = packet.dts if packet.dts is not None else stamp
                if stamp is None or stamp <= last or (not marked and decoded_at < ts):
                    continue
                key = bool(packet.is_keyframe)
                if marked and not key:
                    continue
                if not marked and key and not wants(self.seconds(stamp)):
                    break
                last = max(stamp, ts)
                yield packet, key
                break

    def packets_in_order(self, wants: Callable[[float], bool]) -> Iterator[tuple[Any, bool]]:
        """The packets to decode, reading every packet in order, with whether each is a
        keyframe: the keyframes ``wants`` asks for, and (``False``) the other frames at least
        ``_INTRA_SIZE`` of the keyframes' median size, which may be intra. Raises "truncated"
        when the stream holds fewer frames than its header claims, or a Matroska or AVI stream
        ends well before its header's duration."""
        last_time = None
        count = 0
        key_sizes: list[int] = []
        for packet in self.container.demux(self.stream):
            stamp = _stamp(packet)
            if packet.size == 0 or stamp is None:
                continue
            count += 1
            t = self.seconds(stamp)
            last_time = t if last_time is None else max(last_time, t)
            if packet.is_keyframe:
                key_sizes.append(packet.size)
                if wants(t):
                    yield packet, True
            elif key_sizes and packet.size >= _INTRA_SIZE * float(np.median(key_sizes[-16:])):
                yield packet, False
        claimed = int(self.stream.frames or 0)
        if claimed and count < 0.98 * claimed - 1:
            raise DecodeError(
                f"truncated (holds {count} of the {claimed} frames its header claims)"
            )
        if (
            self.container.format.name in _DURATION_CHECKED
            and self.duration
            and (last_time is None or last_time < self.duration - max(1.0, 0.02 * self.duration))
        ):
            raise DecodeError("truncated")

    def decode(self, packet: Any, intra_only: bool = False) -> Any | None:
        """The frame of one keyframe packet, decoded on its own (None when it gives none).
        ``intra_only``: a packet not marked as a keyframe, whose frame is kept only when it
        decoded as an intra frame of its own (the decoder shows frames before a keyframe:
        ``flags2 +showall``; one that needed others is dropped)."""
        frames = self.cc.decode(packet)
        if not frames:
            frames = self.cc.decode(None)  # drain: a decoder with delay holds its frame back
        self.cc.flush_buffers()
        if intra_only:
            frames = [
                f
                for f in frames
                if int(f.pict_type) == _INTRA and f.pts == packet.pts and not f.is_corrupt
            ]
        return frames[0] if frames else None

    def frame_at(
        self, seconds: float, size: tuple[int, int], views: int, cover: float | None = None
    ) -> tuple[float, np.ndarray]:
        """The frame shown at ``seconds`` (see ``load_frame_at``); with ``cover``, the frame
        itself, its aspect kept, covering ``size`` scaled by ``cover`` (``load_still``)."""
        target = self.start + int(max(0.0, seconds) / float(self.time_base))
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except Exception:  # a stream that cannot seek: read it from the start
            self.container.seek(0)
        shown = None
        for frame in self.container.decode(self.stream):
            if frame.pts is None:
                continue
            if shown is not None and frame.pts > target:
                break
            shown = frame
        if shown is None:
            raise DecodeError("no frame of the video could be decoded")
        if cover is not None:
            return self.seconds(shown.pts), _render(shown, size, cover, _rotation(shown))
        pixels = _render(shown, size, view_cover(views), _rotation(shown))
        return self.seconds(shown.pts), make_views(pixels, size, views)

    def first_rotation(self) -> int:
        """The display rotation of the first keyframe that decodes (0 when none does)."""
        for packet, key in self.packets_in_order(lambda t: True):
            frame = self.decode(packet, intra_only=not key)
            if frame is not None:
                return _rotation(frame)
        return 0


def _sample(video: _Video, size: tuple[int, int], views: int, sampling: Sampling) -> VideoSample:
    """Choose, decode and render the frames of ``video`` (see the module docstring)."""
    cover = view_cover(views)
    if cover is not None:
        video.lowres_for((math.ceil(size[0] * cover), math.ceil(size[1] * cover)))
    else:
        video.lowres_for(size)
    sampler = Sampler(video.duration, sampling)
    keys = video.index_keys()
    packets = (
        video.packets_at(keys, sampler.wants)
        if keys is not None
        else video.packets_in_order(sampler.wants)
    )
    rotation = None
    last_pts = None
    decoded = 0
    for packet, key in packets:
        frame = video.decode(packet, intra_only=not key)
        decoded += 1
        if frame is None:
            continue
        stamp = frame.pts if frame.pts is not None else _stamp(packet)
        if stamp is None or (last_pts is not None and stamp <= last_pts):
            continue
        if not key:
            sampler.wants(video.seconds(stamp), cut=True)  # an encoder's intra frame: a cut
        last_pts = stamp
        if rotation is None:
            rotation = _rotation(frame)
        sampler.offer(video.seconds(stamp), _render(frame, size, cover, rotation))
    chosen = sampler.frames()
    if not chosen:
        raise DecodeError("no frame of the video could be decoded")
    return VideoSample(
        times=np.asarray([max(0.0, k.time) for k in chosen], dtype=np.float64),
        pixels=np.stack([make_views(k.pixels, size, views) for k in chosen]),
        facts=video.facts(rotation or 0),
        probes=decoded,
    )


def _render(frame: Any, size: tuple[int, int], cover: float | None, rotation: int) -> np.ndarray:
    """A decoded frame as RGB uint8, upright, squashed to ``size`` (width, height), or with
    ``cover`` its aspect kept, covering ``size`` scaled by ``cover``."""
    turns = _quarter_turns(rotation)
    width, height = size
    if cover is not None:
        shown_w, shown_h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
        scale = max(width * cover / shown_w, height * cover / shown_h)
        width, height = max(width, round(shown_w * scale)), max(height, round(shown_h * scale))
    ask = (height, width) if turns % 2 else (width, height)
    a = frame.to_ndarray(width=ask[0], height=ask[1], format="rgb24", interpolation="AREA")
    if turns:
        a = np.rot90(a, turns)
    return np.ascontiguousarray(a)


def _rotation(frame: Any) -> int:
    """Degrees counterclockwise the frame is turned for display (its display matrix)."""
    try:
        value = frame.rotation
        return int(round(float(value))) if value is not None and math.isfinite(value) else 0
    except (AttributeError, TypeError, ValueError):
        return 0


def _quarter_turns(rotation: int) -> int:
    return round(rotation / 90) % 4


def _stamp(packet: Any) -> int | None:
    return packet.pts if packet.pts is not None else packet.dts


def _duration(container: Any, st: Any) -> float | None:
    """The stream's length in seconds from the header (the container's when the stream has
    none); None when neither says."""
    if st.duration and st.time_base:
        value = float(st.duration * st.time_base)
    elif container.duration:
        value = container.duration / 1_000_000
    else:
        return None
    return value if math.isfinite(value) and value > 0 else None
