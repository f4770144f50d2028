"""Videos the tests write themselves with PyAV, from photos (the shared ones, or generated).

``slideshow(path, shots, ...)`` writes one video of a few shots, each a photo shown for some
seconds with a slow zoom (so that frames of a shot differ a little, as filmed frames do), and
returns each shot's start and end in seconds. Kept small (low resolution, few frames a second)
so that tests stay quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

KINDS_OF_PHOTO = ("cat", "dog", "sunflower")


def sources(photos: Path, scratch: Path) -> dict[str, list[Path]]:
    """Three photos of each kind: the shared cats, dogs and sunflowers under ``photos`` when
    it is there, else photos ``make_photo`` generates in ``scratch``, each kind tinted its own
    colour (red discs, blue stripes, green squares, on grey noise that alone would make them
    look alike at a glance)."""
    if photos.exists():
        pets = sorted((photos / "pets").glob("*/*.jpg"))
        return {
            "cat": [p for p in pets if p.parent.name == "cat"][:3],
            "dog": [p for p in pets if p.parent.name == "dog"][:3],
            "sunflower": sorted((photos / "flowers17" / "sunflower").glob("*.jpg"))[:3],
        }
    from tests.conftest import make_photo

    out: dict[str, list[Path]] = {}
    tints = {"cat": (1.6, 0.6, 0.6), "dog": (0.6, 0.6, 1.6), "sunflower": (0.6, 1.6, 0.6)}
    for k, (name, shape) in enumerate(zip(KINDS_OF_PHOTO, ("red", "blue", "green"), strict=True)):
        out[name] = []
        for i in range(3):
            path = make_photo(scratch / f"{name}{i}.png", shape, 7 * i + k, (320, 240))
            rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
            tinted = np.clip(rgb * np.asarray(tints[name]), 0, 255).astype(np.uint8)
            Image.fromarray(tinted).save(path)
            out[name].append(path)
    return out


#: (codec, container options) of each kind of test video.
KINDS = {
    "mp4": ("h264", None),  # libx264 when PyAV's FFmpeg has it, else MPEG-4 (h264_codec)
    "webm": ("libvpx-vp9", None),
    "avi": ("mjpeg", None),
    "mkv": ("h264", None),
    "mov": ("h264", None),
}


@dataclass(frozen=True)
class Shot:
    """One photo shown for ``seconds``."""

    photo: Path | np.ndarray
    seconds: float


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def h264_codec() -> str:
    """libx264 where PyAV's FFmpeg has it, else FFmpeg's own MPEG-4 part 2."""
    return "libx264" if has_encoder("libx264") else "mpeg4"


def _rgb(photo: Path | np.ndarray, size: tuple[int, int], zoom: float) -> np.ndarray:
    im = Image.open(photo).convert("RGB") if isinstance(photo, Path) else Image.fromarray(photo)
    w, h = im.size
    cw, ch = w / zoom, h / zoom
    left, top = (w - cw) / 2, (h - ch) / 2
    return np.asarray(im.resize(size, Image.BILINEAR, box=(left, top, left + cw, top + ch)))


def slideshow(
    path: Path,
    shots: Sequence[Shot],
    *,
    fps: int = 5,
    size: tuple[int, int] = (320, 240),
    codec: str | None = None,
    options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    rotation: int | None = None,
    container_options: dict[str, str] | None = None,
    container: str | None = None,
) -> list[tuple[float, float]]:
    """Write ``shots`` into a video at ``path`` (container from its name); returns each shot's
    (start, end) in seconds. ``codec`` defaults by the extension (``KINDS``); H.264 gets a
    keyframe every second unless ``options`` say otherwise (as phones write them)."""
    ext = path.suffix.lower().lstrip(".")
    codec = codec or KINDS.get(ext, ("h264", None))[0]
    if codec == "h264":
        codec = h264_codec()
    pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    opts = {"g": str(fps)} if codec in ("libx264", "mpeg4", "libvpx-vp9") else {}
    opts.update(options or {})
    if codec == "libvpx-vp9":
        opts.setdefault("deadline", "realtime")
        opts.setdefault("cpu-used", "8")
    out = av.open(str(path), "w", format=container, options=container_options or {})
    try:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        stream.options = opts
        if rotation is not None:
            stream.set_display_rotation(rotation)
        spans = []
        n = 0
        for shot in shots:
            frames = max(1, round(shot.seconds * fps))
            spans.append((n / fps, (n + frames) / fps))
            for k in range(frames):
                rgb = _rgb(shot.photo, size, 1.0 + 0.05 * k / frames)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = n
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    return spans
