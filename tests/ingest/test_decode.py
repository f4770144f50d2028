"""decode.load_rgb on files the tests make: every format, orientation, and every way to be bad."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finder.errors import DecodeError, UsageError
from finder.ingest import decode, reduced
from finder.ingest.decode import load_rgb

RED = (255, 0, 0)
BLUE = (0, 0, 255)
SIZE = (64, 48)  # (width, height)


def photo(width: int = 320, height: int = 240) -> Image.Image:
    """A smooth, colourful RGB image (gradients), so lossy codecs and resizing stay close."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * x / (width - 1)
    g = 255 * y / (height - 1)
    b = 127 + 100 * np.sin(x / 23.0) * np.cos(y / 17.0)
    return Image.fromarray(np.stack([r, g, b], -1).round().astype(np.uint8), "RGB")


def two_tone(width: int, height: int, top=RED, bottom=BLUE) -> Image.Image:
    """Top half ``top``, bottom half ``bottom``."""
    a = np.empty((height, width, 3), np.uint8)
    a[: height // 2] = top
    a[height // 2 :] = bottom
    return Image.fromarray(a, "RGB")


def reference(im: Image.Image, size=SIZE) -> np.ndarray:
    """A plain full decode + resize of an in-memory image (what load_rgb should approximate)."""
    return np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def assert_ok(out: np.ndarray, size=SIZE) -> None:
    assert out.dtype == np.uint8
    assert out.shape == (size[1], size[0], 3)


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("a.jpg", {"quality": 95}),
        ("a.png", {}),
        ("a.webp", {"quality": 95}),
        ("a.bmp", {}),
        ("a.tif", {}),
    ],
)
def test_common_formats_decode_close_to_source(tmp_path: Path, name: str, kwargs: dict) -> None:
    src = photo()
    path = tmp_path / name
    src.save(path, **kwargs)
    out = load_rgb(str(path), SIZE)
    assert_ok(out)
    assert mad(out, reference(src)) < 3.0


def test_size_is_width_height_and_squashes_without_crop(tmp_path: Path) -> None:
    # Left third red, rest blue, 300x100: squashed to 30x60 the left third is still red.
    a = np.zeros((100, 300, 3), np.uint8)
    a[:, :100] = RED
    a[:, 100:] = BLUE
    Image.fromarray(a).save(tmp_path / "wide.png")
    out = load_rgb(str(tmp_path / "wide.png"), (30, 60))
    assert out.shape == (60, 30, 3)
    assert (out[:, :9, 0] > 200).all() and (out[:, :9, 2] < 50).all()
    assert (out[:, 11:, 2] > 200).all() and (out[:, 11:, 0] < 50).all()


def test_heic(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    src = photo()
    heif = pillow_heif.from_pillow(src)
    heif.save(tmp_path / "a.heic", quality=95)
    out = load_rgb(str(tmp_path / "a.heic"), SIZE)
    assert_ok(out)
    assert mad(out, reference(src)) < 4.0


def test_heic_thumbnail_is_used_when_large_enough(tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    from finder.ingest.decode import _register_heif

    _register_heif()
    # One-pixel stripes: a filtered downscale of the full image is flat grey, while libheif's
    # point-sampled thumbnail keeps hard black and white stripes. That tells which was decoded.
    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::2] = 255
    Image.fromarray(stripes).save(tmp_path / "thumb.heic", quality=95, thumbnails=[256])
    Image.fromarray(stripes).save(tmp_path / "plain.heic", quality=95, thumbnails=[])
    with Image.open(tmp_path / "thumb.heic") as im:
        assert im.info.get("thumbnails") == [256]
    from_thumb = load_rgb(str(tmp_path / "thumb.heic"), (224, 168))
    from_full = load_rgb(str(tmp_path / "plain.heic"), (224, 168))
    assert from_thumb.shape == from_full.shape == (168, 224, 3)
    assert from_full.std() < 30 and from_thumb.std() > 60
    # Asked for more than the thumbnail holds: the full image is decoded.
    assert load_rgb(str(tmp_path / "thumb.heic"), (300, 200)).std() < 30


def test_heic_named_jpg_is_recognised_by_content(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    src = two_tone(80, 60)
    pillow_heif.from_pillow(src).save(tmp_path / "really_heic.jpg", quality=95, format="HEIF")
    out = load_rgb(str(tmp_path / "really_heic.jpg"), SIZE)
    assert out[5, 30, 0] > 200 and out[-5, 30, 2] > 200


def test_heic_orientation_is_applied_once(tmp_path: Path) -> None:
    # pillow-heif stores the EXIF orientation as a HEIF transform and undoes it on reading
    # (reporting orientation 1): load_rgb must not turn the picture a second time.
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = two_tone(400, 300, RED, BLUE).transpose(Image.Transpose.ROTATE_90)
    pillow_heif.from_pillow(stored).save(tmp_path / "o6.heic", quality=95, exif=exif.tobytes())
    out = load_rgb(str(tmp_path / "o6.heic"), (40, 30))
    assert (out[:12, :, 0] > 200).all() and (out[-12:, :, 2] > 200).all(), "red must be on top"


def test_avif_when_supported(tmp_path: Path) -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    src = photo()
    src.save(tmp_path / "a.avif", quality=95)
    assert mad(load_rgb(str(tmp_path / "a.avif"), SIZE), reference(src)) < 4.0


def test_mpo_gives_first_frame(tmp_path: Path) -> None:
    first, second = two_tone(200, 150, RED, RED), two_tone(200, 150, BLUE, BLUE)
    first.save(tmp_path / "a.mpo", format="MPO", save_all=True, append_images=[second])
    assert Image.open(tmp_path / "a.mpo").format == "MPO"
    out = load_rgb(str(tmp_path / "a.mpo"), SIZE)
    assert out[..., 0].mean() > 240 and out[..., 2].mean() < 15


def test_gif_palette_first_frame(tmp_path: Path) -> None:
    frames = [two_tone(80, 60, RED, BLUE), two_tone(80, 60, BLUE, RED)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert Image.open(tmp_path / "a.gif").mode == "P"
    out = load_rgb(str(tmp_path / "a.gif"), SIZE)
    assert tuple(out[5, 30]) == RED and tuple(out[-5, 30]) == BLUE


def test_png_alpha_is_composited_on_white(tmp_path: Path) -> None:
    a = np.zeros((60, 80, 4), np.uint8)
    a[:30] = (255, 0, 0, 255)  # opaque red top
    a[30:] = (0, 0, 255, 0)  # fully transparent bottom (blue underneath must not show)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    out = load_rgb(str(tmp_path / "a.png"), SIZE)
    assert tuple(out[5, 30]) == RED
    assert tuple(out[-5, 30]) == (255, 255, 255)


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    im = two_tone(80, 60, RED, BLUE).convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    blue_index = im.getpixel((0, 59))
    im.save(tmp_path / "p.png", transparency=blue_index)
    out = load_rgb(str(tmp_path / "p.png"), SIZE)
    assert tuple(out[5, 30]) == RED
    assert tuple(out[-5, 30]) == (255, 255, 255)


def test_grayscale_and_bilevel(tmp_path: Path) -> None:
    g = photo().convert("L")
    g.save(tmp_path / "g.jpg", quality=95)
    g.convert("1").save(tmp_path / "b.png")
    out = load_rgb(str(tmp_path / "g.jpg"), SIZE)
    assert_ok(out)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert mad(out, reference(g)) < 3.0
    bi = load_rgb(str(tmp_path / "b.png"), SIZE)
    assert_ok(bi)
    assert bi.min() < 60 and bi.max() > 200


def test_cmyk_jpeg(tmp_path: Path) -> None:
    src = photo()
    src.convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    assert mad(load_rgb(str(tmp_path / "c.jpg"), SIZE), reference(src)) < 4.0


@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm"])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    # A ramp over the full 16-bit range: clipping would make most of it white.
    ramp = np.linspace(0, 65535, 256, dtype=np.float64).round().astype(np.uint16)
    a = np.tile(ramp, (64, 1))
    Image.fromarray(a).save(tmp_path / f"d{suffix}")
    assert Image.open(tmp_path / f"d{suffix}").mode in ("I;16", "I;16B", "I")  # PGM: "I"
    out = load_rgb(str(tmp_path / f"d{suffix}"), (256, 64))
    expected = np.tile((ramp / 257.0).round(), (64, 1))
    assert np.abs(out[..., 0].astype(float) - expected).max() <= 2
    assert out[..., 0].mean() == pytest.approx(127.5, abs=2)


def test_32_bit_int_and_float_modes(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (20, 1))
    Image.fromarray(ramp, "F").save(tmp_path / "f.tif")
    Image.fromarray((ramp * 65535).astype(np.int32), "I").save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    assert Image.open(tmp_path / "i.tif").mode == "I"
    for name in ("f.tif", "i.tif"):
        out = load_rgb(str(tmp_path / name), (100, 20))[..., 0].astype(float)
        assert np.abs(out - np.tile(ramp * 255, (1, 1))).max() <= 2, name


# --- orientation and draft -------------------------------------------------------------------


# What a camera stores for each orientation: the upright picture turned the other way.
STORED_TURN = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def save_with_orientation(upright: Image.Image, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(STORED_TURN[orientation]).save(path, quality=95, exif=exif)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_comes_out_upright(tmp_path: Path, orientation: int) -> None:
    upright = two_tone(400, 300, RED, BLUE)  # what a viewer shows: red on top
    path = tmp_path / f"o{orientation}.jpg"
    save_with_orientation(upright, path, orientation)
    assert Image.open(path).size == ((300, 400) if orientation in (6, 8) else (400, 300))
    out = load_rgb(str(path), (40, 30))
    assert out.shape == (30, 40, 3)
    assert (out[:12, :, 0] > 200).all() and (out[:12, :, 2] < 60).all(), "red must be on top"
    assert (out[-12:, :, 2] > 200).all() and (out[-12:, :, 0] < 60).all()


def test_exif_orientation_matches_pillow_exif_transpose(tmp_path: Path) -> None:
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = 6
    photo(1200, 800).save(tmp_path / "r.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "r.jpg") as im:
        expected = reference(ImageOps.exif_transpose(im), (120, 90))
    out = load_rgb(str(tmp_path / "r.jpg"), (120, 90))
    assert mad(out, expected) < 3.0


def test_jpeg_draft_is_used_and_close_to_full_decode(tmp_path: Path) -> None:
    src = photo(2400, 1600)
    src.save(tmp_path / "big.jpg", quality=92)
    with Image.open(tmp_path / "big.jpg") as im:
        full = reference(im, (224, 224))
    with Image.open(tmp_path / "big.jpg") as im:  # the draft really reduces this file
        im.draft("RGB", (224, 224))
        assert im.size == (600, 400)  # 1/4 scale, still >= 224
    out = load_rgb(str(tmp_path / "big.jpg"), (224, 224))
    assert_ok(out, (224, 224))
    assert mad(out, full) < 2.0


def test_draft_never_goes_below_target_after_rotation(tmp_path: Path) -> None:
    # Upright 400x1600 with 4-pixel vertical stripes, stored turned (1600x400, orientation 6).
    # Asked for 390x100: only a full-width decode keeps the stripes. A draft sized without
    # swapping for the rotation would decode at 1/4 (400x100 stored = 100 px wide upright),
    # below the target width, and the stripes would blur into grey.
    upright = np.zeros((1600, 400, 3), np.uint8)
    upright[:, (np.arange(400) // 4) % 2 == 0] = 255
    save_with_orientation(Image.fromarray(upright), tmp_path / "tall.jpg", 6)
    out = load_rgb(str(tmp_path / "tall.jpg"), (390, 100))
    assert out.shape == (100, 390, 3)
    assert out[..., 0].std() > 80, "stripes lost: decoded below the target size"


def test_progressive_jpeg_close_to_full_decode(tmp_path: Path) -> None:
    src = photo(2400, 1800)
    src.save(tmp_path / "prog.jpg", quality=92, progressive=True)
    with Image.open(tmp_path / "prog.jpg") as im:
        assert im.info.get("progressive")
        full = reference(im, (224, 224))
    out = load_rgb(str(tmp_path / "prog.jpg"), (224, 224))
    assert_ok(out, (224, 224))
    assert mad(out, full) < 2.0


def test_progressive_dc_scans_are_a_smaller_valid_jpeg(tmp_path: Path) -> None:
    buf = io.BytesIO()
    photo(2400, 1800).save(buf, format="JPEG", quality=92, progressive=True)
    data = buf.getvalue()
    dc = reduced.dc_scans_only(data)
    assert dc is not None and len(dc) < len(data) / 2
    with Image.open(io.BytesIO(dc)) as im:
        im.draft("RGB", (224, 224))
        im.load()
        assert im.size == (300, 225)
    baseline = io.BytesIO()
    photo(2400, 1800).save(baseline, format="JPEG", quality=92)
    assert reduced.dc_scans_only(baseline.getvalue()) is None  # nothing to leave out
    assert reduced.dc_scans_only(data[: len(data) - 100]) is None  # no EOI: not ours to judge


def test_truncated_progressive_jpeg(tmp_path: Path) -> None:
    buf = io.BytesIO()
    photo(2400, 1800).save(buf, format="JPEG", quality=92, progressive=True)
    data = buf.getvalue()
    (tmp_path / "t.jpg").write_bytes(data[: int(len(data) * 0.8)])  # AC scans cut off
    assert reason(tmp_path / "t.jpg") == "truncated"


def test_opaque_rgba_is_the_same_as_rgb(tmp_path: Path) -> None:
    src = photo()
    src.save(tmp_path / "rgb.png")
    src.convert("RGBA").save(tmp_path / "rgba.png")
    assert Image.open(tmp_path / "rgba.png").mode == "RGBA"
    rgb = load_rgb(str(tmp_path / "rgb.png"), SIZE)
    assert np.array_equal(load_rgb(str(tmp_path / "rgba.png"), SIZE), rgb)


def test_corrupt_exif_decodes_silently(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "Camera" * 20
    buf = io.BytesIO()
    photo().save(buf, format="JPEG", exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    at = data.find(b"Exif\x00\x00") + 6 + 8  # the IFD's entry count
    data[at : at + 2] = b"\xff\x7f"  # far more entries than the block holds
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(bytes(data))
    # In a fresh interpreter (pytest replaces warning filters): decodes, prints nothing.
    code = (
        "import sys; from finder.ingest.decode import load_rgb; "
        "print(load_rgb(sys.argv[1], (8, 6)).shape)"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(6, 8, 3)"
    assert done.stderr == ""


# --- names -----------------------------------------------------------------------------------


def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    try:
        with open(raw, "wb") as f:
            photo().save(f, format="JPEG", quality=95)
    except (OSError, UnicodeError) as e:
        pytest.skip(f"file system refuses non-UTF-8 names: {e}")
    path = os.fsdecode(raw)  # str with a surrogate escape, as crawl.walk yields it
    assert "\udce9" in path
    assert_ok(load_rgb(path, SIZE))


def test_accepts_pathlike(tmp_path: Path) -> None:
    photo().save(tmp_path / "a.png")
    assert_ok(load_rgb(tmp_path / "a.png", SIZE))


# --- bad files: one DecodeError with a short reason ------------------------------------------


def reason(path: os.PathLike | str) -> str:
    with pytest.raises(DecodeError) as info:
        load_rgb(str(path), SIZE)
    text = str(info.value)
    assert "\n" not in text and len(text) <= 120
    return text


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.jpg").write_bytes(b"")
    assert reason(tmp_path / "e.jpg") == "empty file"


@pytest.mark.parametrize("keep", [0.3, 0.9, -2])
def test_truncated_jpeg(tmp_path: Path, keep: float) -> None:
    buf = io.BytesIO()
    photo(640, 480).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    cut = len(data) + keep if keep < 0 else int(len(data) * keep)
    (tmp_path / "t.jpg").write_bytes(data[: int(cut)])
    assert reason(tmp_path / "t.jpg") == "truncated"


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    photo(640, 480).save(buf, format="PNG")
    data = buf.getvalue()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert reason(tmp_path / "t.png") == "truncated"


def test_text_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 10)
    assert reason(tmp_path / "notes.jpg") == "not an image"


def test_non_photo_image_formats_are_not_images(tmp_path: Path) -> None:
    # Pillow reads these, but they are not photos; EPS would even start Ghostscript.
    photo().save(tmp_path / "icon.jpg", format="ICO")
    photo().save(tmp_path / "doc.jpg", format="PDF")
    (tmp_path / "art.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    for name in ("icon.jpg", "doc.jpg", "art.jpg"):
        assert reason(tmp_path / name) == "not an image", name


def test_garbage_after_jpeg_header_is_a_decode_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    photo().save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    data[200:] = os.urandom(len(data) - 200)  # header survives, the rest is noise
    (tmp_path / "noise.jpg").write_bytes(bytes(data))
    try:
        out = load_rgb(str(tmp_path / "noise.jpg"), SIZE)
    except DecodeError as e:
        assert str(e)
    else:  # libjpeg may decode noise into noise; that is allowed, but it must be the right shape
        assert_ok(out)


def test_missing_file_vanished(tmp_path: Path) -> None:
    assert reason(tmp_path / "gone.jpg") == "file vanished"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").mkdir()
    assert reason(tmp_path / "x.jpg") == "is a directory"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_fifo_named_like_a_photo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would wait for a writer forever
    assert reason(tmp_path / "pipe.jpg") == "not a regular file"


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not deny root, so permission denied cannot be shown",
)
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.jpg"
    photo().save(path)
    path.chmod(0)
    try:
        assert reason(path) == "permission denied"
    finally:
        path.chmod(0o644)


def test_decompression_bomb_over_our_limit(tmp_path: Path, monkeypatch) -> None:
    photo(400, 300).save(tmp_path / "big.png")
    monkeypatch.setattr(decode, "MAX_PIXELS", 400 * 300 - 1)
    assert reason(tmp_path / "big.png") == "decompression bomb"
    monkeypatch.setattr(decode, "MAX_PIXELS", 400 * 300)
    assert_ok(load_rgb(str(tmp_path / "big.png"), SIZE))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (only the header is ever read)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 10)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# decode turns Pillow's warning into an error at import; pytest resets warning filters per test.
@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [20_000, 40_000])  # 400 MP (over our limit), 1.6 GP (Pillow's)
def test_crafted_decompression_bomb_header(tmp_path: Path, side: int) -> None:
    (tmp_path / "bomb.png").write_bytes(_png_claiming(side, side))
    assert reason(tmp_path / "bomb.png") == "decompression bomb"


def test_100_megapixel_panorama_is_not_a_bomb() -> None:
    assert decode.MAX_PIXELS >= 150_000_000
    assert Image.MAX_IMAGE_PIXELS >= decode.MAX_PIXELS


@pytest.mark.parametrize("size", [(0, 10), (10, -1), ("a", 3), (5,)])
def test_bad_size_is_a_usage_error(tmp_path: Path, size) -> None:
    photo().save(tmp_path / "a.png")
    with pytest.raises(UsageError):
        load_rgb(str(tmp_path / "a.png"), size)


# --- real photos -----------------------------------------------------------------------------


def test_real_photos_decode() -> None:
    from tests.conftest import PHOTOS

    pets = PHOTOS / "pets" / "cat"
    if not pets.is_dir():
        pytest.skip(f"real photos not found at {pets}")
    for path in sorted(pets.glob("*.jpg"))[:5]:
        with Image.open(path) as im:
            full = reference(im, (224, 224))
        out = load_rgb(str(path), (224, 224))
        assert_ok(out, (224, 224))
        assert mad(out, full) < 4.0, path


def test_views_are_the_whole_image_a_centre_crop_and_their_mirrors(tmp_path: Path) -> None:
    from tests.conftest import make_photo

    path = make_photo(tmp_path / "wide.jpg", "red", seed=3, size=(160, 120))
    one = decode.load_views(path, (64, 64), 1)
    assert one.shape == (1, 64, 64, 3) and np.array_equal(one[0], load_rgb(path, (64, 64)))
    two = decode.load_views(path, (64, 64), 2)
    assert np.array_equal(two[0], one[0]) and np.array_equal(two[1], one[0][:, ::-1])
    # cover keeps the aspect ratio: 160x120 covering 64x64 scaled by 2 is 171x128
    big = load_rgb(path, (64, 64), cover=2.0)
    assert big.shape == (128, 171, 3)
    four = decode.load_views(path, (64, 64), 4)
    assert four.shape == (4, 64, 64, 3) and four.dtype == np.uint8
    assert np.array_equal(four[1], four[0][:, ::-1]) and np.array_equal(four[3], four[2][:, ::-1])
    # view 2 is the centre of the image scaled to short side 64 * 256/224 = 73
    scaled = load_rgb(path, (64, 64), cover=decode.CROP_COVER)
    assert scaled.shape[0] == 73
    top, left = (scaled.shape[0] - 64) // 2, (scaled.shape[1] - 64) // 2
    assert np.array_equal(four[2], scaled[top : top + 64, left : left + 64])
    # the whole-image view of four looks like the squashed image, not like the crop
    diff_whole = np.abs(four[0].astype(int) - one[0].astype(int)).mean()
    diff_crop = np.abs(four[2].astype(int) - one[0].astype(int)).mean()
    assert diff_whole < 3 < diff_crop
    with pytest.raises(UsageError, match="views"):
        decode.load_views(path, (64, 64), 3)
