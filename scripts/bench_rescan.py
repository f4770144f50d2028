"""How long `finder index` takes over an unchanged tree of 100,000 photos, and proof that it
reads none of them.

    python scripts/bench_rescan.py [--files 100000] [--runs 3]

Makes a tree of small JPEG files (100 per folder) and a library that already holds them all.
The library is filled the fastest way: catalog rows and random unit vectors written straight
through the catalog and vector store, recorded as made by a tiny Keras model (the rescan never
embeds, so the backbone only has to exist). Then it runs `finder index TREE` in a fresh process,
`--runs` times, with a Python audit hook that counts every file opened under the tree, and
prints the wall time of each run (the median last) and the number of files opened (must be 0).
The bar: under 15 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

from finder.ingest import crawl  # noqa: E402
from finder.library import Library  # noqa: E402

RUN = textwrap.dedent(
    """
    import os, sys, time
    tree = os.fsencode(sys.argv[1])
    opened = []

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = os.fsencode(args[0])
            if path.startswith(tree):
                opened.append(path)

    sys.addaudithook(hook)
    t0 = time.perf_counter()
    from finder.show.cli import app
    try:
        app(["index", sys.argv[1], "--library", sys.argv[2], "--json", "--quiet"],
            standalone_mode=False)
    finally:
        print("BENCH", time.perf_counter() - t0, len(opened), file=sys.stderr)
    """
)


def make_tree(root: Path, n: int) -> None:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
    data = buf.getvalue()
    for i in range(n):
        d = root / f"d{i // 100:05d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"p{i:07d}.jpg").write_bytes(data)


def tiny_backbone_info(work: Path) -> dict:
    import keras

    from finder.embed.registry import build

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model_path = work / "tiny.keras"
    keras.Model(inputs, keras.layers.Dense(2)(x)).save(model_path)
    return build(model=str(model_path), layer="pool").info.to_dict()


def fill_library(library: Path, tree: Path, info: dict) -> None:
    """Catalog rows marked ok plus one random unit vector each, as an index run would leave."""
    rng = np.random.default_rng(0)
    with Library(library) as lib:
        lib.folder.open_catalog_for_writing().set_meta("backbone", info)
        facts = list(crawl.walk([str(tree)]))
        for start in range(0, len(facts), 10_000):
            chunk = facts[start : start + 10_000]
            ids = lib.folder.open_catalog_for_writing().insert_pending(chunk)
            vectors = rng.standard_normal((len(ids), info["dim"])).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            lib.folder.open_vectors_and_repair().add(np.asarray(ids, dtype=np.int64), vectors)
            lib.folder.open_vectors_and_repair().commit()
            lib.folder.open_catalog_for_writing().record_results([(i, None) for i in ids], [])
        lib.folder.open_vectors_and_repair().save_index()
        lib.folder.open_catalog_for_writing().set_meta(
            "index_name", lib.folder.open_vectors_and_repair().index_name()
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="finder-rescan-"))
    try:
        tree, library = work / "tree", work / "library"
        t0 = time.perf_counter()
        make_tree(tree, args.files)
        print(f"made {args.files} files in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        fill_library(library, tree, tiny_backbone_info(work))
        print(f"filled the library in {time.perf_counter() - t0:.1f}s")
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
        times, opens = [], []
        for run in range(args.runs):
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", RUN, str(tree), str(library)],
                capture_output=True,
                env=env,
                timeout=600,
            )
            line = [x for x in proc.stderr.decode().splitlines() if x.startswith("BENCH")]
            if proc.returncode != 0 or not line:
                sys.exit(f"run failed: {proc.stderr.decode()[-2000:]}")
            seconds = time.perf_counter() - started  # the whole command, start-up included
            opened = int(line[-1].split()[2])
            summary = json.loads(proc.stdout)
            times.append(seconds)
            opens.append(opened)
            print(
                f"run {run + 1}: {seconds:.2f}s, {opened} files opened under the tree, "
                f"unchanged {summary['unchanged']}, embedded {summary['embedded']}"
            )
        result = {
            "files": args.files,
            "runs": args.runs,
            "median_s": round(statistics.median(times), 2),
            "max_files_opened": max(opens),
            "under_15s": statistics.median(times) < 15,
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
