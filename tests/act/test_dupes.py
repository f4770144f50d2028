"""Duplicates: identical files, near-duplicates confirmed on pixels, other shots kept apart."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from finder.act import dupes
from finder.errors import UsageError
from finder.library import Library
from finder.store.catalog import ImageRow
from tests.test_library import _choice


def scene(seed: int = 1, size: tuple[int, int] = (960, 720)) -> Image.Image:
    """A synthetic landscape larger than one shot: a sky-to-grass gradient with grain, and
    coloured discs and bars, slightly blurred like a lens would."""
    rng = np.random.default_rng(seed)
    w, h = size
    y = np.linspace(0, 1, h)[:, None, None]
    sky = np.array([120, 170, 230]) * (1 - y) + np.array([60, 120, 60]) * y
    base = np.broadcast_to(sky, (h, w, 3)) + rng.normal(0, 6, (h, w, 3))
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(25):
        x, y0, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(20, 90))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y0 - r, x + r, y0 + r], fill=colour)
        else:
            draw.rectangle([x - r, y0 - r // 2, x + r, y0 + r // 2], fill=colour)
    return im.filter(ImageFilter.GaussianBlur(1.5))


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One shot of a scene, edits of it, and two other shots of the same scene."""
    d = tmp_path_factory.mktemp("shots")
    big = scene()
    shot = big.crop((0, 0, 640, 480))
    ims = {
        "shot.jpg": (shot, {"quality": 92}),
        "resized.jpg": (shot.resize((320, 240), Image.Resampling.LANCZOS), {"quality": 55}),
        "cropped.jpg": (shot.crop((32, 24, 640, 480)), {"quality": 90}),
        "turned.jpg": (
            shot.rotate(2.5, Image.Resampling.BICUBIC).crop((26, 20, 614, 460)),
            {"quality": 90},
        ),
        "brighter.png": (ImageEnhance.Brightness(shot).enhance(1.25), {}),
        # Other photos of the same scene: framed elsewhere, and with the subject moved in.
        "framed.jpg": (big.crop((200, 150, 840, 630)), {"quality": 92}),
    }
    moved = shot.copy()
    ImageDraw.Draw(moved).ellipse([380, 180, 560, 400], fill=(200, 40, 40))
    ims["moved.jpg"] = (moved, {"quality": 92})
    out = {}
    for name, (im, kw) in ims.items():
        im.save(d / name, **kw)
        out[name] = d / name
    return out


# --- the pixel check --------------------------------------------------------------------------


@pytest.mark.parametrize("edit", ["resized.jpg", "cropped.jpg", "turned.jpg", "brighter.png"])
def test_edits_of_one_shot_pass_the_pixel_check(shots: dict[str, Path], edit: str) -> None:
    a, b = dupes.signature(str(shots["shot.jpg"])), dupes.signature(str(shots[edit]))
    assert dupes.correlation(a, b) >= dupes.MIN_CORRELATION
    assert dupes.same_shot(b, a)


@pytest.mark.parametrize("other", ["framed.jpg", "moved.jpg"])
def test_other_shots_of_one_scene_fail_the_pixel_check(shots: dict[str, Path], other: str) -> None:
    a, b = dupes.signature(str(shots["shot.jpg"])), dupes.signature(str(shots[other]))
    assert dupes.correlation(a, b) < dupes.MIN_CORRELATION - 0.1
    assert not dupes.same_shot(a, b)


def test_signature_views_are_unit_vectors(shots: dict[str, Path]) -> None:
    s = dupes.signature(str(shots["shot.jpg"]))
    assert s.shape == (len(dupes.VIEWS), dupes.THUMB**2)
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-4)
    assert np.allclose(s.mean(axis=1), 0.0, atol=1e-4)


def test_the_file_to_keep_has_most_pixels_then_is_oldest() -> None:
    def f(name: str, w: int, taken: str | None, mtime: int = 0) -> dupes.DupeFile:
        return dupes.DupeFile(f"/p/{name}", 0, 1, mtime, w, w, taken)

    big_new = f("big-new.jpg", 100, "2020-01-01T00:00:00")
    big_old = f("big-old.jpg", 100, "2019-01-01T00:00:00")
    small_oldest = f("small.jpg", 50, "2001-01-01T00:00:00")
    undated = f("undated-but-old-file.jpg", 100, None, mtime=1)
    order = dupes._keep_first([small_oldest, big_new, undated, big_old])
    assert [x.path for x in order] == [
        "/p/big-old.jpg",
        "/p/big-new.jpg",
        "/p/undated-but-old-file.jpg",
        "/p/small.jpg",
    ]


# --- identical files ----------------------------------------------------------------------------


def _row(i: int, path: Path, fingerprint: str | None) -> ImageRow:
    st = path.stat()
    return ImageRow(i, str(path), st.st_size, st.st_mtime_ns, fingerprint, "ok", None)


def test_identical_sets_are_confirmed_by_a_full_hash(tmp_path: Path) -> None:
    # Same size, same first and last 64 KiB (so the same catalog fingerprint), other middle.
    head, tail = os.urandom(65536), os.urandom(65536)
    (tmp_path / "a.jpg").write_bytes(head + b"A" * 1000 + tail)
    (tmp_path / "b.jpg").write_bytes(head + b"B" * 1000 + tail)
    shutil.copyfile(tmp_path / "a.jpg", tmp_path / "a-copy.jpg")
    from finder.ingest.crawl import fingerprint

    fps = {n: fingerprint(tmp_path / n, (tmp_path / n).stat().st_size) for n in ("a.jpg", "b.jpg")}
    assert fps["a.jpg"] == fps["b.jpg"]
    rows = [
        _row(1, tmp_path / "a.jpg", fps["a.jpg"]),
        _row(2, tmp_path / "b.jpg", fps["a.jpg"]),
        _row(3, tmp_path / "a-copy.jpg", fps["a.jpg"]),
        _row(4, tmp_path / "b.jpg", None),  # no fingerprint: never in a set
    ]
    sets = dupes.identical_sets(rows)
    assert [[r.id for r in s] for s in sets] == [[1, 3]]
    (tmp_path / "a-copy.jpg").unlink()  # vanished since indexing: left out
    assert dupes.identical_sets(rows) == []


# --- the library ------------------------------------------------------------------------------


@pytest.fixture
def album(tmp_path: Path, shots: dict[str, Path]) -> Path:
    """An album: the shot, a byte-identical copy of it (older), the resized copy, and the two
    other shots of the scene; plus a sub-folder holding only the resized copy's twin."""
    root = tmp_path / "album"
    (root / "backup").mkdir(parents=True)
    for name in ("shot.jpg", "resized.jpg", "framed.jpg", "moved.jpg"):
        shutil.copyfile(shots[name], root / name)
    shutil.copyfile(shots["shot.jpg"], root / "backup" / "shot-copy.jpg")
    os.utime(root / "backup" / "shot-copy.jpg", (1_500_000_000, 1_500_000_000))
    return root


def test_library_groups_identical_and_near_duplicates(
    tmp_path: Path, album: Path, model_args
) -> None:
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(album)])
        # A reader: another process may hold the library (an index run) meanwhile.
        with Library(tmp_path / "lib") as reader:
            groups = reader.dupes()
    by_kind = {g.kind: g for g in groups}
    assert sorted(by_kind) == ["identical", "near"] and len(groups) == 2
    identical, near = by_kind["identical"], by_kind["near"]
    copy = str(album / "backup" / "shot-copy.jpg")
    # Same pixels: the oldest is kept.
    assert [f.path for f in identical.files] == [copy, str(album / "shot.jpg")]
    assert identical.similarity == 1.0
    # The identical pair takes part once, through the file it keeps; the larger one is kept.
    assert [f.path for f in near.files] == [copy, str(album / "resized.jpg")]
    assert (near.keep.width, near.keep.height) == (640, 480)
    assert (near.files[1].width, near.files[1].height) == (320, 240)
    assert dupes.MIN_COSINE <= near.similarity <= 1.0
    # Other shots of the scene are in no group.
    grouped = {f.path for g in groups for f in g.files}
    assert str(album / "framed.jpg") not in grouped and str(album / "moved.jpg") not in grouped
    # Nothing was deleted.
    assert all(Path(p).exists() for p in grouped)


def _touching(groups: list[dupes.DupeGroup], folder: Path) -> list[dupes.DupeGroup]:
    return [g for g in groups if any(f.path.startswith(str(folder) + os.sep) for f in g.files)]


def test_dupes_under_a_folder(tmp_path: Path, album: Path, model_args) -> None:
    shutil.copyfile(album / "resized.jpg", album / "backup" / "resized-copy.jpg")
    (tmp_path / "album-2").mkdir()  # a sibling whose name extends the folder's
    shutil.copyfile(album / "shot.jpg", tmp_path / "album-2" / "shot.jpg")
    backup = album / "backup"
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(album), str(tmp_path / "album-2")])
        inside = lib.dupes(under=str(backup))
        everything = lib.dupes()
        in_album = lib.dupes(under=str(album))
        with pytest.raises(UsageError, match="no such folder"):
            lib.dupes(under=str(tmp_path / "nowhere"))
        with pytest.raises(UsageError, match="empty path"):
            lib.dupes(under="")
    # Each group with a file in the folder, whole, as a run over the whole library gives it:
    # the copies elsewhere are shown, and the one to keep is chosen over all of them.
    assert inside == _touching(everything, backup)
    kinds = sorted((g.kind, len(g.files)) for g in inside)
    assert kinds == [("identical", 2), ("identical", 3), ("near", 2)]
    shot_copies = next(g for g in inside if g.kind == "identical" and len(g.files) == 3)
    assert {f.path for f in shot_copies.files} == {
        str(backup / "shot-copy.jpg"),
        str(album / "shot.jpg"),
        str(tmp_path / "album-2" / "shot.jpg"),  # outside the folder, in its group
    }
    assert in_album == _touching(everything, album) == everything


def test_dupes_under_a_folder_keeps_the_original_outside_it(
    tmp_path: Path, shots: dict[str, Path], model_args
) -> None:
    """Issue 24, 7: worse copies in a folder, the original elsewhere: the group is shown whole
    and the original is the one to keep (not the best of the worse copies)."""
    root = tmp_path / "photos"
    (root / "phone").mkdir(parents=True)
    (root / "other").mkdir()
    shutil.copyfile(shots["shot.jpg"], root / "shot.jpg")
    shutil.copyfile(shots["resized.jpg"], root / "phone" / "resized.jpg")
    shutil.copyfile(shots["cropped.jpg"], root / "phone" / "cropped.jpg")
    shutil.copyfile(shots["framed.jpg"], root / "other" / "framed.jpg")  # another shot
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(root)])
        phone = lib.dupes(under=str(root / "phone"))
        whole = lib.dupes()
        other = lib.dupes(under=str(root / "other"))
    assert len(phone) == 1 and phone == whole
    group = phone[0]
    assert group.kind == "near" and group.keep.path == str(root / "shot.jpg")
    assert {f.path for f in group.files[1:]} == {
        str(root / "phone" / "resized.jpg"),
        str(root / "phone" / "cropped.jpg"),
    }
    assert other == []


def test_index_and_exact_candidates_give_the_same_groups(
    tmp_path: Path, shots: dict[str, Path], model_args
) -> None:
    """The candidate pairs from the search index (an IVF tier, forced on a small library) and
    from every pair of vectors give the same groups, for the whole library and a folder."""
    from finder.store.vectors import VectorStore

    root = tmp_path / "photos"
    (root / "edits").mkdir(parents=True)
    for name in ("shot.jpg", "framed.jpg", "moved.jpg"):
        shutil.copyfile(shots[name], root / name)
    for name in ("resized.jpg", "cropped.jpg", "turned.jpg", "brighter.png"):
        shutil.copyfile(shots[name], root / "edits" / name)
    shutil.copyfile(shots["shot.jpg"], root / "edits" / "shot-copy.jpg")
    other = scene(seed=2).crop((100, 100, 740, 580))
    other.save(root / "second.jpg", quality=92)
    other.resize((400, 300)).save(root / "edits" / "second-small.jpg", quality=70)
    with Library(tmp_path / "lib", backbone=_choice(model_args)) as lib:
        lib.index([str(root)])
        dim = lib.folder.open_vectors().dim
        ivf = VectorStore(tmp_path / "lib" / "vectors", dim, flat_max=2, read_only=True)
        assert "ivf" in ivf.index_name()
        for under in (None, str(root / "edits")):
            exact = dupes.find_dupes(lib.folder.open_catalog(), ivf, under, exact_below=10**9)
            index = dupes.find_dupes(lib.folder.open_catalog(), ivf, under, exact_below=0)
            assert index == exact
            assert sorted((g.kind, len(g.files)) for g in index) == [
                ("identical", 2),
                ("near", 2),
                ("near", 5),
            ]
        ivf.close()


def test_cli_dupes_text_and_json(tmp_path: Path, album: Path, cli, model_args) -> None:
    cli("index", str(album), *model_args)
    data = cli.json("dupes")
    assert [g["kind"] for g in data["groups"]] == ["identical", "near"]
    first = data["groups"][0]
    assert first["keep"] == first["files"][0]["path"] == str(album / "backup" / "shot-copy.jpg")
    fields = {"path", "id", "bytes", "mtime_ns", "width", "height", "taken"}
    assert set(first["files"][0]) == fields
    assert data["spare_files"] == 2
    assert data["spare_bytes"] == sum(f["bytes"] for g in data["groups"] for f in g["files"][1:])
    out = cli("dupes").stdout
    assert "identical, 2 files:" in out and "near-duplicates (" in out
    assert "keep" in out and "2 groups: 2 files could go" in out and "nothing was deleted" in out
    # --under the backup folder: both groups hold its copy, each shown whole, the same keeper.
    assert cli.json("dupes", "--under", str(album / "backup"))["groups"] == data["groups"]
    bad = cli("dupes", "--under", str(tmp_path / "nowhere"), ok=False)
    assert bad.exit_code != 0 and "no such folder" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    # an empty --under: tests/show/test_rough_edges.py, through the real entry point


def test_dupes_before_indexing_is_one_line(tmp_path: Path, cli) -> None:
    result = cli("dupes", ok=False)
    assert result.exit_code != 0 and "finder index" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
