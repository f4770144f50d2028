"""Decode speed: finder's load_rgb against a full Pillow decode + resize, side by side.

For every photo under FOLDER (default /usr/share/backgrounds: `apt-get install mate-backgrounds
ukui-wallpapers` puts 2-18 megapixel JPEG and PNG there), both decoders run one after the other,
alternating which goes first, REPEAT times. Each file's time is the median of its repeats;
images per second for a set of files is their count over the sum of those medians. Printed for
all files, for JPEG only, and for the files of at least MIN_MP megapixels; the last line is JSON.

Cameras write baseline JPEGs while wallpapers are often progressive (a different decoding cost),
so each progressive JPEG of at least MIN_MP megapixels is also re-encoded as a baseline JPEG
(quality 92, 4:2:0, like a camera) in a temporary folder and measured too ("baseline copy");
--no-copies turns that off.

    python scripts/bench_decode.py [FOLDER] [--repeat 5] [--size 224] [--min-mp 12]

The bar: on photos of 12 MP or more, finder's decode at least 4x the full Pillow decode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finder.errors import DecodeError  # noqa: E402
from finder.ingest.crawl import walk  # noqa: E402
from finder.ingest.decode import load_rgb  # noqa: E402


def full_decode(path: str, size: tuple[int, int]) -> None:
    """The plain way: decode every pixel, convert to RGB, resize."""
    with Image.open(path) as im:
        im.convert("RGB").resize(size, Image.Resampling.BILINEAR)


def finder_decode(path: str, size: tuple[int, int]) -> None:
    load_rgb(path, size)


def timed(fn, path: str, size: tuple[int, int]) -> float:
    t = time.perf_counter()
    fn(path, size)
    return time.perf_counter() - t


def summary(rows: list[dict]) -> dict:
    if not rows:
        return {"files": 0}
    full = sum(r["full_s"] for r in rows)
    fast = sum(r["finder_s"] for r in rows)
    return {
        "files": len(rows),
        "megapixels_median": round(statistics.median(r["mp"] for r in rows), 1),
        "full_pillow_img_per_s": round(len(rows) / full, 2),
        "finder_img_per_s": round(len(rows) / fast, 2),
        "ratio": round(full / fast, 2),
        "ratio_median_per_file": round(
            statistics.median(r["full_s"] / r["finder_s"] for r in rows), 2
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default="/usr/share/backgrounds")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--min-mp", type=float, default=12.0)
    ap.add_argument("--no-copies", action="store_true", help="no baseline copies of big files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> int:
    size = (args.size, args.size)

    files = []
    for fact in walk(args.folder):
        try:
            with Image.open(fact.path) as im:
                files.append((fact.path, im.format, im.size[0] * im.size[1] / 1e6))
            load_rgb(fact.path, size)  # warm up and drop files finder cannot read
        except (OSError, DecodeError) as e:
            print(f"skip {fact.path}: {e}", file=sys.stderr)
            files = [f for f in files if f[0] != fact.path]
    if not files:
        print(f"no readable photos under {args.folder}", file=sys.stderr)
        return 1
    copies: set[str] = set()
    for path, fmt, mp in list(files):
        if args.no_copies or fmt != "JPEG" or mp < args.min_mp:
            continue
        with Image.open(path) as im:
            if not im.info.get("progressive"):
                continue
            copy = tmp / f"{Path(path).stem} (baseline copy).jpg"
            im.convert("RGB").save(copy, quality=92, subsampling="4:2:0", exif=im.getexif())
        copies.add(str(copy))
        files.append((str(copy), "JPEG", mp))

    times = {path: ([], []) for path, _, _ in files}
    for rep in range(args.repeat):
        for i, (path, _, _) in enumerate(files):
            full, fast = times[path]
            if (rep + i) % 2 == 0:
                full.append(timed(full_decode, path, size))
                fast.append(timed(finder_decode, path, size))
            else:
                fast.append(timed(finder_decode, path, size))
                full.append(timed(full_decode, path, size))

    rows = []
    for path, fmt, mp in files:
        full, fast = times[path]
        rows.append(
            {
                "path": path,
                "format": fmt,
                "mp": mp,
                "full_s": statistics.median(full),
                "finder_s": statistics.median(fast),
                "copy": path in copies,
            }
        )
    rows.sort(key=lambda r: -r["mp"])
    print(f"{'MP':>5} {'fmt':5} {'full ms':>8} {'finder ms':>9} {'ratio':>6}  file")
    for r in rows:
        print(
            f"{r['mp']:5.1f} {r['format']:5} {1000 * r['full_s']:8.1f} {1000 * r['finder_s']:9.1f} "
            f"{r['full_s'] / r['finder_s']:6.2f}  {Path(r['path']).name}"
        )
    originals = [r for r in rows if not r["copy"]]
    big = f"ge_{args.min_mp:g}mp"
    groups = {  # the files of FOLDER; the baseline copies only in their own group
        "all": originals,
        "jpeg": [r for r in originals if r["format"] in ("JPEG", "MPO")],
        big: [r for r in originals if r["mp"] >= args.min_mp],
        f"jpeg_{big}": [
            r for r in originals if r["mp"] >= args.min_mp and r["format"] in ("JPEG", "MPO")
        ],
        f"baseline_copies_{big}": [r for r in rows if r["copy"]],
    }
    result = {"size": args.size, "repeat": args.repeat}
    for name, group in groups.items():
        s = summary(group)
        result[name] = s
        if s["files"]:
            print(
                f"{name:>26}: {s['files']:3d} files, full Pillow {s['full_pillow_img_per_s']:6.2f}"
                f" img/s, finder {s['finder_img_per_s']:6.2f} img/s, ratio {s['ratio']:.2f}"
                f" (median per file {s['ratio_median_per_file']:.2f})"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
