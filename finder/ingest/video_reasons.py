"""Why a video could not be read, in a few words (for ``finder.ingest.video``): what FFmpeg's
errors mean for a person, and whether a file is cut short, told from its structure."""

from __future__ import annotations

from typing import BinaryIO

from finder.ingest.files import os_error_reason

_BMFF_TYPES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"})


def _looks_like_video(head: bytes) -> bool:
    """The first bytes of an ISO BMFF (MP4/MOV), Matroska, AVI or MPEG-TS file."""
    return (
        head[4:8] in _BMFF_TYPES
        or head[:4] == b"\x1a\x45\xdf\xa3"
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:1] == b"\x47"
        or head[4:5] == b"\x47"  # M2TS: a 4-byte time code before each packet
    )


def _bmff_truncated(f: BinaryIO, nbytes: int) -> bool:
    """Whether the top-level boxes of an ISO BMFF file run past its end (or it has no
    ``moov``, the index, which a file cut short before its end loses)."""
    pos, seen_moov = 0, False
    try:
        while pos + 8 <= nbytes:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return True
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if size == 1 and len(head) >= 16:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:
                size = nbytes - pos
            if size < 8:
                return False  # not boxes: corrupt, not cut short
            seen_moov |= kind == b"moov"
            if pos + size > nbytes:
                return True
            pos += size
    except OSError:
        return False
    return not seen_moov


def open_reason(f: BinaryIO, head: bytes, nbytes: int, e: Exception, ffmpeg_error: type) -> str:
    """Why FFmpeg could not open the file (``ffmpeg_error``: PyAV's base error class)."""
    if isinstance(e, OSError) and not isinstance(e, ffmpeg_error):
        return os_error_reason(e)
    if head[4:8] in _BMFF_TYPES and _bmff_truncated(f, nbytes):
        return "truncated"
    if not _looks_like_video(head):
        return "not a video"
    return short(f"corrupt video: {_message(e)}")


def ffmpeg_reason(e: Exception) -> str:
    """Why FFmpeg failed while reading the file."""
    message = _message(e)
    if "max_pixels" in str(e) or "Invalid argument" in message and "avcodec_open2" in str(e):
        return "decompression bomb"
    if isinstance(e, EOFError) or "end of file" in message.lower():
        return "truncated"
    return short(f"corrupt video: {message}")


def _message(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


def short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
