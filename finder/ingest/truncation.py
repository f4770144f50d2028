"""Does a photo file hold the data its header declares? Pillow decodes some damaged files without
a word: a PNG whose compressed stream ends after half its rows (the rest left black), a baseline
JPEG cut short with an end marker appended (libjpeg fills the rest with flat grey and only warns),
a progressive JPEG missing its later scans. And it allocates whatever a header declares before a
single pixel is read: 196 bytes of PNG declaring 15000×15000 cost 900 MB. The checks here let
``finder.ingest.decode`` refuse those as "truncated", before any pixel memory for the PNG case.

* :func:`check_declared`: a header that declares more pixels than its file could hold. Any file
  may declare ``SAFE_PIXELS``; beyond that, at most ``MAX_PIXELS_PER_BYTE`` pixels a byte of file
  (deflate holds at most 1032 bytes a byte, LZW about 2730 pixels a byte; lossless WebP and HEIC
  could do more only for flat, synthetic images). JPEG is exempt: it is decoded at reduced scale.
* :func:`check_png`: inflates the first image's IDAT stream, counting (not keeping) its bytes,
  and compares them with what the header's size, depth, colour type and interlacing need.
* :func:`jpeg_grey_tail` and :func:`jpeg_padded`: a baseline JPEG whose last block decoded to
  exactly (128, 128, 128) is decoded again with filler bytes before its end marker: when the
  scan had ended early, the filler changes the image; a complete scan ignores it.
* :func:`progressive_incomplete`: the scans of a progressive JPEG must bring every coefficient
  of every component to full precision.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image

from finder.errors import DecodeError

#: Pixels any header may declare, whatever the file's size (16 MP).
SAFE_PIXELS = 1 << 24
#: Beyond SAFE_PIXELS, the most pixels a byte of compressed file is believed to hold.
MAX_PIXELS_PER_BYTE = 4096
#: Formats exempt from check_declared: decoded at reduced scale (``Image.draft``).
_SCALED = frozenset({"JPEG", "MPO"})

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 passes: (first column, first row, column step, row step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
_ADAM7 += ((0, 1, 1, 2),)
_INFLATE_STEP = 1 << 20

SOI, EOI, SOS = b"\xff\xd8", 0xD9, 0xDA
#: A marker ending entropy-coded data: 0xFF then neither a stuffed 0x00, a restart marker nor fill.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_FILLER = bytes(range(1, 128)) * 4  # no 0xFF: read as entropy-coded data by a decoder


def check_declared(im: Image.Image, file_size: int) -> None:
    """Raise ``DecodeError`` when ``im``'s header declares more pixels than its file can hold."""
    w, h = im.size
    pixels = w * h
    if im.format in _SCALED or pixels <= SAFE_PIXELS:
        return
    if pixels > max(file_size, 1) * MAX_PIXELS_PER_BYTE:
        raise DecodeError(f"truncated: {w}x{h} pixels declared in {file_size} bytes")


def png_data_size(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of filtered scanlines a PNG of this header inflates to."""
    bits = depth * _PNG_CHANNELS.get(colour, 4)

    def rows(w: int, h: int) -> int:
        return 0 if w <= 0 or h <= 0 else h * (1 + (w * bits + 7) // 8)

    if not interlace:
        return rows(width, height)
    return sum(
        rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7
    )


def check_png(f: BinaryIO) -> None:
    """Raise ``DecodeError("truncated")`` when the PNG in ``f`` inflates to fewer bytes than its
    header needs. Leaves ``f``'s position as it was; malformed streams are left to the decoder."""
    pos = f.tell()
    try:
        f.seek(0)
        head = f.read(33)
        if len(head) < 33 or head[12:16] != b"IHDR":
            return
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        need = png_data_size(width, height, head[24], head[25], head[28])
        got, _ = _inflated_idat(f, 33, need)
    finally:
        f.seek(pos)
    if got is not None and got < need:
        raise DecodeError("truncated")


def _inflated_idat(f: BinaryIO, offset: int, need: int) -> tuple[int | None, bool]:
    """(bytes the IDAT chunks inflate to, up to ``need``; whether the stream ended), or
    (None, False) when the stream is malformed (the decoder then says why)."""
    inflater = zlib.decompressobj()
    got = 0
    f.seek(offset)
    seen_idat = False
    while got < need:
        header = f.read(8)
        if len(header) < 8:
            break
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        if kind != b"IDAT":
            if seen_idat or kind == b"IEND":
                break
            f.seek(length + 4, 1)
            continue
        seen_idat = True
        data = f.read(length)
        f.seek(4, 1)  # CRC
        try:
            while data and got < need:
                got += len(inflater.decompress(data, _INFLATE_STEP))
                data = inflater.unconsumed_tail
        except zlib.error:
            return None, False
        if inflater.eof:
            break
    return got, inflater.eof


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a JPEG stream after SOI, a scan with its
    entropy-coded data, up to EOI; marker -1 for a stream that breaks off or is malformed."""
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == EOI:
            yield marker, i, i + 2
            return
        if i + 4 > n:
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == SOS:
            if end > n:
                break
            found = _MARKER_AFTER_SCAN.search(data, end)
            if found is None:
                break
            end = found.start()
        yield marker, i, end
        i = end
    yield -1, i, n


def progressive_incomplete(data: bytes) -> bool:
    """True when a progressive JPEG's scans leave a coefficient of a component short of full
    precision (later scans missing: cut short). Malformed streams give False."""
    try:
        components: list[int] | None = None
        final: dict[int, set[int]] = {}
        for marker, start, _ in jpeg_segments(data):
            if marker == 0xC2:
                count = data[start + 9]
                components = [data[start + 10 + 3 * j] for j in range(count)]
            elif marker == SOS:
                count = data[start + 4]
                p = start + 5 + 2 * count
                first, last, al = data[p], data[p + 1], data[p + 2] & 0x0F
                if al == 0:
                    for j in range(count):
                        final.setdefault(data[start + 5 + 2 * j], set()).update(
                            range(first, last + 1)
                        )
            elif marker in (EOI, -1):
                break
    except IndexError:
        return False
    return components is not None and any(len(final.get(c, ())) < 64 for c in components)


def jpeg_grey_tail(im: Image.Image) -> bool:
    """True when a decoded JPEG's last pixels are exactly mid-grey, as libjpeg leaves the blocks
    a scan that ended early never reached (worth a closer look: :func:`jpeg_padded`)."""
    if im.mode not in ("RGB", "L"):
        return False
    w, h = im.size
    corner = np.asarray(im.crop((max(0, w - 2), max(0, h - 2), w, h)))
    return bool(corner.size) and bool((corner == 128).all())


def jpeg_padded(data: bytes) -> bytes | None:
    """``data`` with filler bytes inserted before the end marker that closes its first scan,
    or None when its first scan is not closed by one (then no verdict)."""
    scans = 0
    for marker, start, _ in jpeg_segments(data):
        if marker == SOS:
            scans += 1
        elif marker == EOI:
            return data[:start] + _FILLER + data[start:] if scans == 1 else None
        elif marker == -1 or scans:
            return None
    return None
