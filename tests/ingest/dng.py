"""A minimal DNG writer for tests: a Bayer (RGGB) mosaic of an RGB picture, uncompressed 16-bit,
optionally with an embedded JPEG preview in IFD0 (as cameras and converters store one).

Enough of the DNG spec for LibRaw to open, demosaic and find the preview: DNGVersion, the CFA
tags, a colour matrix, white level and as-shot neutral.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_SIZE = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SRATIONAL: 8}
_FMT = {BYTE: "B", ASCII: "B", SHORT: "H", LONG: "I", RATIONAL: "II", SRATIONAL: "ii"}


def _pack(kind: int, values: list) -> bytes:
    if kind == ASCII:
        return values[0].encode() + b"\0"
    if kind in (RATIONAL, SRATIONAL):
        flat = [x for pair in values for x in pair]
        return struct.pack("<" + _FMT[kind][0] * len(flat), *flat)
    return struct.pack("<" + _FMT[kind] * len(values), *values)


class _Tiff:
    def __init__(self) -> None:
        self.buf = bytearray(b"II*\0\0\0\0\0")

    def blob(self, data: bytes) -> int:
        if len(self.buf) % 2:
            self.buf += b"\0"
        at = len(self.buf)
        self.buf += data
        return at

    def ifd(self, entries: dict[int, tuple[int, list]], next_ifd: int = 0) -> tuple[int, int]:
        """Write an IFD; returns (its offset, offset of its next-IFD field)."""
        packed = {tag: (kind, _pack(kind, vals), vals) for tag, (kind, vals) in entries.items()}
        out = {}
        for tag, (kind, data, vals) in packed.items():
            count = len(data) if kind in (ASCII, BYTE) else len(vals)
            out[tag] = (kind, count, data if len(data) <= 4 else self.blob(data))
        at = self.blob(struct.pack("<H", len(out)))
        for tag in sorted(out):
            kind, count, value = out[tag]
            field = value.ljust(4, b"\0") if isinstance(value, bytes) else struct.pack("<I", value)
            self.buf += struct.pack("<HHI", tag, kind, count) + field
        link = len(self.buf)
        self.buf += struct.pack("<I", next_ifd)
        return at, link

    def point(self, where: int, to: int) -> None:
        self.buf[where : where + 4] = struct.pack("<I", to)


def mosaic(rgb: np.ndarray, white: int = 4095) -> np.ndarray:
    """RGGB Bayer samples (uint16, 0..white) of an RGB uint8 picture with even sides."""
    lin = (rgb.astype(np.float64) / 255.0) ** 2.2 * white
    out = np.empty(rgb.shape[:2], dtype=np.uint16)
    out[0::2, 0::2] = lin[0::2, 0::2, 0]
    out[0::2, 1::2] = lin[0::2, 1::2, 1]
    out[1::2, 0::2] = lin[1::2, 0::2, 1]
    out[1::2, 1::2] = lin[1::2, 1::2, 2]
    return out


def write_dng(
    path: Path,
    rgb: np.ndarray,
    *,
    preview: np.ndarray | None = None,
    orientation: int = 1,
) -> Path:
    """Write ``rgb`` (uint8 H x W x 3, even sides) as a DNG; ``preview``: an RGB picture stored
    as the JPEG preview in IFD0, with the raw data in a SubIFD."""
    h, w = rgb.shape[:2]
    white = 4095
    t = _Tiff()
    raw_at = t.blob(mosaic(rgb, white).tobytes())
    raw_tags = {
        254: (LONG, [0]),
        256: (LONG, [w]),
        257: (LONG, [h]),
        258: (SHORT, [16]),
        259: (SHORT, [1]),
        262: (SHORT, [32803]),
        273: (LONG, [raw_at]),
        277: (SHORT, [1]),
        278: (LONG, [h]),
        279: (LONG, [w * h * 2]),
        284: (SHORT, [1]),
        33421: (SHORT, [2, 2]),
        33422: (BYTE, [0, 1, 1, 2]),
        50717: (LONG, [white]),
    }
    main_tags = {
        271: (ASCII, ["Finder"]),
        272: (ASCII, ["Test DNG"]),
        274: (SHORT, [orientation]),
        50706: (BYTE, [1, 4, 0, 0]),
        50707: (BYTE, [1, 1, 0, 0]),
        50708: (ASCII, ["Finder Test DNG"]),
        # sRGB D65 XYZ -> camera: the camera is an sRGB camera
        50721: (
            SRATIONAL,
            [
                (32406, 10000),
                (-15372, 10000),
                (-4986, 10000),
                (-9689, 10000),
                (18758, 10000),
                (415, 10000),
                (557, 10000),
                (-2040, 10000),
                (10570, 10000),
            ],
        ),
        50728: (RATIONAL, [(1, 1), (1, 1), (1, 1)]),
        50778: (SHORT, [21]),
    }
    if preview is None:
        at, _ = t.ifd({**raw_tags, **main_tags})
        t.point(4, at)
        return _save(path, t)
    buf = io.BytesIO()
    Image.fromarray(preview).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    jpeg_at = t.blob(jpeg)
    sub_at, _ = t.ifd(raw_tags)
    ph, pw = preview.shape[:2]
    preview_tags = {
        254: (LONG, [1]),
        256: (LONG, [pw]),
        257: (LONG, [ph]),
        258: (SHORT, [8, 8, 8]),
        259: (SHORT, [7]),
        262: (SHORT, [6]),
        273: (LONG, [jpeg_at]),
        277: (SHORT, [3]),
        278: (LONG, [ph]),
        279: (LONG, [len(jpeg)]),
        284: (SHORT, [1]),
        330: (LONG, [sub_at]),
    }
    at, _ = t.ifd({**preview_tags, **main_tags})
    t.point(4, at)
    return _save(path, t)


def _save(path: Path, t: _Tiff) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(t.buf))
    return path
