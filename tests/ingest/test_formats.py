"""The formats beyond the common ones: JPEG 2000, Netpbm and camera RAW (DNG made by the tests)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from finder.errors import DecodeError
from finder.ingest import crawl, raw
from finder.ingest.decode import load_rgb, load_views
from tests.ingest.dng import write_dng
from tests.ingest.test_decode import SIZE, assert_ok, mad, photo, reference, two_tone


def rgb(im: Image.Image) -> np.ndarray:
    return np.array(im.convert("RGB"))


# --- JPEG 2000 --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.jp2", "a.j2k"])
def test_jpeg2000(tmp_path: Path, name: str) -> None:
    if not features.check("jpg_2000"):
        pytest.skip("this Pillow has no JPEG 2000 support")
    src = photo()
    src.save(tmp_path / name, quality_mode="dB", quality_layers=[45])
    out = load_rgb(tmp_path / name, SIZE)
    assert_ok(out)
    assert mad(out, reference(src)) < 3.0


def test_large_jpeg2000_decodes_reduced_and_close(tmp_path: Path) -> None:
    if not features.check("jpg_2000"):
        pytest.skip("this Pillow has no JPEG 2000 support")
    src = photo(1600, 1200)
    src.save(tmp_path / "big.jp2", quality_mode="dB", quality_layers=[45])
    with Image.open(tmp_path / "big.jp2") as im:
        im.reduce = 3  # what load_rgb asks for 64x48: the last level at least twice as large
        im.load()
        assert im.size == (200, 150)
    out = load_rgb(tmp_path / "big.jp2", SIZE)
    assert mad(out, reference(src)) < 4.0


def test_jpeg2000_with_fewer_levels_than_the_reduction_still_decodes(tmp_path: Path) -> None:
    if not features.check("jpg_2000"):
        pytest.skip("this Pillow has no JPEG 2000 support")
    src = photo(1024, 768)
    src.save(tmp_path / "flat.jp2", num_resolutions=2)  # one wavelet level: reduce > 1 fails
    out = load_rgb(tmp_path / "flat.jp2", (32, 24))
    assert mad(out, reference(src, (32, 24))) < 3.0


# --- Netpbm -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode"), [("a.ppm", "RGB"), ("a.pnm", "RGB"), ("a.pgm", "L"), ("a.pbm", "1")]
)
def test_netpbm(tmp_path: Path, name: str, mode: str) -> None:
    src = two_tone(64, 48).convert(mode)
    src.save(tmp_path / name)
    out = load_rgb(tmp_path / name, SIZE)
    assert_ok(out)
    assert mad(out, reference(src)) < 1.0


# --- RAW --------------------------------------------------------------------------------------


@pytest.fixture
def scene() -> np.ndarray:
    """An RGB picture with even sides: red top half, blue bottom half, a green square."""
    a = rgb(two_tone(160, 120))
    a[20:60, 100:140] = (0, 200, 0)
    return a


def test_raw_extensions_are_walked(tmp_path: Path) -> None:
    for ext in (".dng", ".CR2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"):
        (tmp_path / f"shot{ext}").write_bytes(b"x")
    assert len(list(crawl.walk(tmp_path))) == 8
    assert raw.is_raw_name("a/B.NEF") and not raw.is_raw_name("a/b.jpg")


def test_dng_without_preview_is_demosaiced(tmp_path: Path, scene: np.ndarray) -> None:
    path = write_dng(tmp_path / "a.dng", scene)
    out = load_rgb(path, (40, 30))
    assert_ok(out, (40, 30))
    # Top half red, bottom half blue, the green square where it was (LibRaw brightens a bit).
    assert out[3, 5, 0] > 200 and out[3, 5, 2] < 60
    assert out[25, 5, 2] > 200 and out[25, 5, 0] < 60
    assert out[10, 30, 1] > 150 and out[10, 30, 0] < 60


def test_dng_preview_is_used_when_large_enough(tmp_path: Path, scene: np.ndarray) -> None:
    # The preview differs from the raw data, so the output tells which one was decoded.
    preview = 255 - scene
    path = write_dng(tmp_path / "p.dng", scene, preview=preview)
    assert mad(load_rgb(path, (40, 30)), reference(Image.fromarray(preview), (40, 30))) < 4.0
    # Asked for more than the preview holds: demosaiced from the raw data instead.
    small = write_dng(tmp_path / "s.dng", scene, preview=preview[::4, ::4].copy())
    big = load_rgb(small, (80, 60))
    assert big[5, 10, 0] > 200 and big[5, 10, 2] < 60  # red, as in the raw data


@pytest.mark.parametrize("with_preview", [False, True])
def test_raw_orientation_is_applied(tmp_path: Path, scene: np.ndarray, with_preview: bool) -> None:
    path = write_dng(
        tmp_path / "r.dng", scene, preview=scene if with_preview else None, orientation=6
    )
    out = load_rgb(path, (30, 40))  # portrait once turned 90° clockwise
    expected = reference(Image.fromarray(scene).transpose(Image.Transpose.ROTATE_270), (30, 40))
    assert mad(out, expected) < 25.0  # the demosaic is brighter; orientation errors are ~100
    assert mad(out, reference(Image.fromarray(scene), (30, 40))) > 60
    assert load_views(path, (16, 16), 4).shape == (4, 16, 16, 3)


def test_broken_raw_files_fail_with_a_reason(tmp_path: Path, scene: np.ndarray) -> None:
    good = write_dng(tmp_path / "good.dng", scene).read_bytes()
    (tmp_path / "cut.dng").write_bytes(good[: len(good) // 3])
    (tmp_path / "text.nef").write_text("not a raw file\n" * 50)
    (tmp_path / "empty.cr2").write_bytes(b"")
    for name in ("cut.dng", "text.nef"):
        with pytest.raises(DecodeError) as e:
            load_rgb(tmp_path / name, SIZE)
        assert "RAW" in str(e.value), name
    with pytest.raises(DecodeError, match="empty file"):
        load_rgb(tmp_path / "empty.cr2", SIZE)


def test_raw_with_non_utf8_name(tmp_path: Path, scene: np.ndarray) -> None:
    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.dng")
    write_dng(Path(path), scene)
    assert_ok(load_rgb(path, SIZE))


def test_raw_size_is_oriented(tmp_path: Path, scene: np.ndarray) -> None:
    assert raw.raw_size(write_dng(tmp_path / "a.dng", scene)) == (160, 120)
    assert raw.raw_size(write_dng(tmp_path / "b.dng", scene, orientation=8)) == (120, 160)


# --- in a library -----------------------------------------------------------------------------


def test_every_format_is_indexed_and_a_broken_raw_recorded_as_failed(
    tmp_path: Path, scene: np.ndarray, cli, model_args
) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    write_dng(root / "plain.dng", scene)
    write_dng(root / "preview.dng", scene, preview=scene)
    good = (root / "plain.dng").read_bytes()
    (root / "broken.nef").write_bytes(good[: len(good) // 3])
    src = Image.fromarray(scene)
    names = ["a.ppm", "a.pnm", "a.pgm", "a.pbm"]
    src.save(root / "a.ppm")
    src.save(root / "a.pnm", format="PPM")
    src.convert("L").save(root / "a.pgm")
    src.convert("1").save(root / "a.pbm")
    if features.check("jpg_2000"):
        src.save(root / "a.jp2")
        src.save(root / "a.j2k")
        names += ["a.jp2", "a.j2k"]
    summary = cli.json("index", str(root), "--quiet", *model_args)
    assert summary["failed"] == 1
    assert summary["embedded"] == 2 + len(names)
    status = cli.json("status", "--failed")
    assert [f["path"] for f in status["failures"]] == [str(root / "broken.nef")]
    assert "RAW" in status["failures"][0]["reason"]


def test_raw_facts_come_from_its_header(tmp_path: Path, scene: np.ndarray) -> None:
    from finder.ingest.decode import load_views_facts, read_facts

    path = write_dng(tmp_path / "r.dng", scene, preview=scene, orientation=6)
    facts = read_facts(path)
    assert (facts.width, facts.height) == (120, 160)  # the developed picture, as shown
    assert (facts.make, facts.model) == ("Finder", "Test DNG")  # from the TIFF header
    assert facts.date_source == "file"  # no EXIF date: the file's
    assert load_views_facts(path, (32, 32))[1] == facts
    plain = read_facts(write_dng(tmp_path / "p.dng", scene))
    assert (plain.width, plain.height) == (160, 120)
