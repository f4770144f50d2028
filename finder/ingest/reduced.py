"""Decoding less of a file when the output is small (see ``finder.ingest.decode``, step 4): a
progressive JPEG reduced by 8 read from its DC scans only, a JPEG 2000 image at a power-of-two
reduction of its wavelet levels. Both only ever make a decode cheaper: where they do not apply,
the whole stream is decoded."""

from __future__ import annotations

import re

from PIL import Image

#: Resizing by at least this factor goes through Pillow's ``reducing_gap`` (and a JPEG 2000
#: reduction stops that far above the output).
REDUCING_GAP = 2.0


# A marker ending entropy-coded data: 0xFF then neither a stuffed 0x00, a restart marker nor fill.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def dc_scans_only(data: bytes) -> bytes | None:
    """A progressive JPEG stream with its AC scans left out, or None when that does not apply.

    At 1/8 scale libjpeg's IDCT of a block is its DC coefficient alone, so the AC scans, most of
    a progressive file, only cost entropy decoding that DCT scaling cannot skip (a full 1/8-scale
    decode of an 18 MP progressive JPEG spends most of its time there). The result is not
    bit-identical to decoding every scan (chroma upsampling and libjpeg's block smoothing look
    at the missing coefficients) but stays within about one grey level on average.

    Returns None (decode the whole stream) unless the stream is a well-formed progressive
    Huffman JPEG (SOF2) that ends with EOI and has AC scans to leave out; so a truncated file
    is still reported as truncated by the full decode.
    """
    if data[:2] != b"\xff\xd8":
        return None
    out = [data[:2]]
    i, n = 2, len(data)
    progressive = dropped = False
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # EOI
            if not (progressive and dropped):
                return None
            out.append(data[i : i + 2])
            return b"".join(out)
        if i + 4 > n:
            return None
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            if marker != 0xC2:
                return None
            progressive = True
        if marker == 0xDA:  # SOS: header, then entropy-coded data up to the next marker
            if end > n:
                return None
            spectral_start = data[i + 5 + 2 * data[i + 4]]
            found = _MARKER_AFTER_SCAN.search(data, end)
            if found is None:
                return None
            end = found.start()
            if spectral_start == 0:
                out.append(data[i:end])
            else:
                dropped = True
        else:
            out.append(data[i:end])
        i = end
    return None


_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def reduce_jpeg2000(im: Image.Image, pre: tuple[int, int]) -> int:
    """Have a JPEG 2000 image decode at the smallest power-of-two reduction still at least
    ``REDUCING_GAP`` times ``pre`` (its wavelet levels make that a fraction of a full decode);
    returns the level. Capped at 5, OpenJPEG's default number of levels (a file with fewer fails,
    and is then decoded in full)."""
    w, h = im.size
    gw, gh = pre[0] * REDUCING_GAP, pre[1] * REDUCING_GAP
    level = 0
    while level < 5 and (w >> (level + 1)) >= gw and (h >> (level + 1)) >= gh:
        level += 1
    if level:
        im.reduce = level  # type: ignore[method-assign, assignment]
    return level
