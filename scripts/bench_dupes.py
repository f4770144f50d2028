"""How well `finder dupes` finds near-duplicates: precision and recall of the pairs it reports.

    python scripts/bench_dupes.py [--photos ../shared/photos] [--model FILE.tflite] [--keep DIR]

Copies the real photos (flowers17: 17 species x 20, pets: 100 cats, 100 dogs) into a temporary
folder and makes near-duplicates of them beside the originals, one edit per photo in turn:

- resize: 55% of the sides (JPEG quality 90)
- reencode: JPEG quality 25 or 50, or WebP quality 40
- crop: 5% of the width and height cut off, from one side or evenly
- rotate: 2-3 degrees either way, the corners cut off as a straightening tool does
- brightness: x1.3 or x0.75

every fourth photo gets a second edit (a group of three), and every twentieth a byte-for-byte
copy. It indexes the folder with the shared TFLite MobileNet, runs ``Library.dupes()`` and
compares the pairs of files that share a group with the truth: two files are a true pair when
they come from the same original photo. Pairs of different photos of the same flower species
(or both cats, or both dogs) are false, and counted apart (``same_class_false``).

Last line: JSON with ``pairs`` (pairs found), ``true_pairs``, ``precision``, ``recall``,
``seconds`` (the dupes call alone) and ``index_seconds``. The bars: precision >= 0.98 and
recall >= 0.95.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

from PIL import Image, ImageEnhance  # noqa: E402

from finder.library import BackboneChoice, Library  # noqa: E402

SHARED = REPO.parent / "shared"
EDITS = ("resize", "reencode", "crop", "rotate", "brightness")
#: Photos of the shared set that are one picture saved twice (mean pixel difference 2 and 5 grey
#: levels, same size): their copies are true pairs too. Found by this benchmark, checked by eye.
SAME_PICTURE = {
    "flowers17/snowdrop/image_0100.jpg": "flowers17/snowdrop/image_0090.jpg",
    "flowers17/tigerlily/image_0498.jpg": "flowers17/tigerlily/image_0484.jpg",
}


def edit(im: Image.Image, kind: str, k: int) -> tuple[Image.Image, dict]:
    """The photo ``im`` edited by ``kind`` (variant ``k``), and how to save it."""
    w, h = im.size
    if kind == "resize":
        return im.resize((round(w * 0.55), round(h * 0.55)), Image.Resampling.LANCZOS), {}
    if kind == "reencode":
        return im, [{"quality": 25}, {"quality": 50}, {"format": "WEBP", "quality": 40}][k % 3]
    if kind == "crop":
        dx, dy = round(w * 0.05), round(h * 0.05)
        if k % 2:  # evenly
            return im.crop((dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2))), {}
        return im.crop((dx, dy, w, h) if k % 4 == 0 else (0, 0, w - dx, h - dy)), {}
    if kind == "rotate":
        angle = (2.0 + (k % 3) * 0.5) * (1 if k % 2 else -1)
        turned = im.rotate(angle, Image.Resampling.BICUBIC, expand=False)
        mx, my = round(0.04 * w + 0.5), round(0.04 * h + 0.5)  # beyond the empty corners
        return turned.crop((mx, my, w - mx, h - my)), {}
    if kind == "brightness":
        return ImageEnhance.Brightness(im).enhance(1.3 if k % 2 else 0.75), {}
    raise ValueError(kind)


def make_corpus(photos: Path, root: Path) -> dict[str, tuple[str, str]]:
    """Copy the photos under ``root`` and add their edited copies; returns for each file its
    (picture, class): the original photo it comes from, or the one it is the same picture as."""
    truth: dict[str, tuple[str, str]] = {}
    originals = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    for n, src in enumerate(originals):
        rel = src.relative_to(photos)
        label = str(rel.parent)
        picture = SAME_PICTURE.get(rel.as_posix(), rel.as_posix())
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.utime(dst, (1_500_000_000, 1_500_000_000))  # the originals are the oldest
        truth[str(dst)] = (picture, label)
        with Image.open(src) as im:
            im = im.convert("RGB")
            kinds = [EDITS[n % len(EDITS)]]
            if n % 4 == 0:
                kinds.append(EDITS[(n + 2) % len(EDITS)])
            for kind in kinds:
                out, how = edit(im, kind, n)
                fmt = how.pop("format", "JPEG")
                how.setdefault("quality", 90)
                ext = ".webp" if fmt == "WEBP" else ".jpg"
                path = root / "edited" / kind / f"{rel.parent.name}-{rel.stem}{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                out.save(path, fmt, **how)
                truth[str(path)] = (picture, label)
        if n % 20 == 0:
            copy = root / "copies" / f"{rel.parent.name}-{rel.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, copy)
            truth[str(copy)] = (picture, label)
    return truth


def pairs_of(groups: list) -> set[tuple[str, str]]:
    """Every pair of paths that share a group (identical copies join their near group)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for g in groups:
        first = g.files[0].path
        for f in g.files[1:]:
            a, b = find(first), find(f.path)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for x in parent:
        members.setdefault(find(x), []).append(x)
    return {
        tuple(sorted(p))
        for group in members.values()
        for p in itertools.combinations(sorted(group), 2)
    }


def candidate_margins(lib: Library, truth: dict[str, tuple[str, str]]) -> dict[str, float]:
    """The pixel correlation of every candidate pair (vectors at least ``MIN_COSINE`` alike):
    the lowest of the true pairs and the highest of the false ones, beside the threshold."""
    from finder.act import dupes

    rows = {r.id: r.path for r in lib.folder.open_catalog_for_writing().rows_under(os.sep)}
    pairs = dupes.candidate_pairs(lib.folder.open_vectors_and_repair(), sorted(rows))
    sigs = {i: dupes.signature(rows[i]) for i in sorted({i for p in pairs for i in p})}
    true_low, false_high = 1.0, -1.0
    for a, b in pairs:
        c = dupes.correlation(sigs[a], sigs[b])
        if truth[rows[a]][0] == truth[rows[b]][0]:
            true_low = min(true_low, c)
        else:
            false_high = max(false_high, c)
    return {
        "candidates": len(pairs),
        "lowest_true_correlation": round(true_low, 4),
        "highest_false_correlation": round(false_high, 4),
        "min_correlation": dupes.MIN_CORRELATION,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=Path, default=SHARED / "photos")
    ap.add_argument(
        "--model",
        type=Path,
        default=SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    )
    ap.add_argument("--keep", type=Path, help="build (or reuse) the corpus and library here")
    ap.add_argument(
        "--margins",
        action="store_true",
        help="also print the pixel correlation of the weakest true and strongest false candidate",
    )
    args = ap.parse_args()
    for need in (args.photos, args.model):
        if not need.exists():
            sys.exit(f"bench_dupes: {need} is missing")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-dupes-"))
    root, lib_dir = work / "photos", work / "library"
    try:
        t0 = time.perf_counter()
        if (work / "truth.json").exists():
            truth = json.loads((work / "truth.json").read_text())
        else:
            truth = make_corpus(args.photos, root)
            (work / "truth.json").write_text(json.dumps(truth))
        print(f"corpus: {len(truth)} files ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        choice = BackboneChoice(model=str(args.model))
        with Library(lib_dir, backbone=choice) as lib:
            t0 = time.perf_counter()
            summary = lib.index([str(root)])
            index_seconds = time.perf_counter() - t0
            print(f"indexed: {summary.embedded} new ({index_seconds:.1f} s)", file=sys.stderr)
            t0 = time.perf_counter()
            groups = lib.dupes()
            seconds = time.perf_counter() - t0
            margins = candidate_margins(lib, truth) if args.margins else {}
        found = pairs_of(groups)
        true = {
            tuple(sorted(p))
            for p in itertools.combinations(sorted(truth), 2)
            if truth[p[0]][0] == truth[p[1]][0]
        }
        hits = found & true
        false = sorted(found - true)
        same_class = [p for p in false if truth[p[0]][1] == truth[p[1]][1]]
        for a, b in false[:20]:
            print(f"false pair: {a}  {b}", file=sys.stderr)
        for a, b in sorted(true - found)[:20]:
            print(f"missed pair: {a}  {b}", file=sys.stderr)
        missed_by_edit: dict[str, int] = {}
        for a, b in true - found:
            for p in (a, b):
                if "/edited/" in p:
                    kind = Path(p).parent.name
                    missed_by_edit[kind] = missed_by_edit.get(kind, 0) + 1
        result = {
            "files": len(truth),
            "groups": len(groups),
            "identical_groups": sum(g.kind == "identical" for g in groups),
            "pairs": len(found),
            "true_pairs": len(true),
            "precision": round(len(hits) / len(found), 4) if found else 1.0,
            "recall": round(len(hits) / len(true), 4) if true else 1.0,
            "false_pairs": len(false),
            "same_class_false": len(same_class),
            "missed_by_edit": missed_by_edit,
            **margins,
            "seconds": round(seconds, 2),
            "index_seconds": round(index_seconds, 1),
        }
        print(json.dumps(result))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
