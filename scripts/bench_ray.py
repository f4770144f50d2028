"""Photos/s of `finder index --ray` against a local `finder index` of the same photos, side by
side on this machine; with --stages, the per-stage figures of docs/scaling.md.

    python scripts/bench_ray.py [FOLDER] [--limit N] [--rounds 1] [--model FILE]
    python scripts/bench_ray.py --limit 12000 --rounds 3   # 12,000 copies cycling the photos
    python scripts/bench_ray.py --stages [FOLDER] [--limit N]

The cluster is started once, before the runs, as `ray start` would be (a head node with this
machine's cores, in this process; its start-up time is printed apart). Each round indexes the
photos twice into fresh libraries, each time in a new `python -m finder index` process: once
locally, once with `--ray ADDRESS`; the order alternates between rounds. A run's rate is what
`finder index` itself reports: photos embedded over the whole run's seconds (walk, model
load, actor start-up, embedding and writing); each process runs the library call the command
makes (``Library.index``), with a progress function that notes when the vectors reach the
writer. The last line is JSON: images, local_img_s, ray_img_s, ratio (median rates over the
rounds; the bar: ratio >= 0.85 with a light backbone, the shared TFLite MobileNet by default),
and to tell the fixed cost from the per-photo one, for each kind of run: *_start_s (the start of
the run to the first vector in the writer), *_steady_img_s (photos/s from the first vector to
the last) and *_end_s (the last vector to the end of the run).

--stages measures, one stage at a time, in CPU time where a stage is compute (so that the
figures per core hold on a loaded machine): decoding (finder.ingest.decode.load_views, one
thread: photos per core-second, for the photos given and for 12-megapixel JPEGs made like a
camera's), embedding (backbone.embed on decoded batches: photos per core-second, for the
light model and for VGG16 fc1) and the single writer (finder.sync.store_results, the library's
own store path: fsynced vectors, catalog commits and the fingerprint each stored photo is read
for, fed with random vectors of 1024 and 4096 dimensions). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

from finder.ingest import crawl  # noqa: E402


def photo_tree(folder: Path, limit: int | None, work: Path) -> tuple[Path, int]:
    """The folder itself, or a tree of ``limit`` copies of its photos (cycling through them
    when ``limit`` is more than there are: copies, since finder indexes a linked file once)."""
    files = sorted(f.path for f in crawl.walk([str(folder)]) if not f.is_dir)
    if not limit or limit == len(files):
        return folder, len(files)
    tree = work / "tree"
    for k in range(limit):
        path = files[k % len(files)]
        dest = tree / f"{k // 500:03d}" / f"{k:06d}{Path(path).suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    return tree, limit


def index_run(tree: Path, library: Path, model: Path, ray: str | None) -> dict:
    """One `finder index` run in a new process (``--run``: the library call the command
    makes, with the times at which the vectors reached the writer)."""
    cmd = [sys.executable, __file__, "--run", str(tree), str(library), "--model", str(model)]
    if ray:
        cmd += ["--ray", ray]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, timeout=7200, check=False)
    wall = time.monotonic() - started
    if out.returncode != 0:
        sys.exit(f"bench_ray: {' '.join(cmd)} failed: {out.stderr.decode()[-800:]}")
    summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
    summary["wall"] = wall
    shutil.rmtree(library, ignore_errors=True)
    return summary


def run_one(tree: Path, library: Path, model: Path, ray: str | None) -> None:
    """In a fresh process, what `finder index TREE --library LIB --model M [--ray R]` does
    (Library.index), with a progress function that notes when each vector reached the writer.
    Prints JSON: embedded, failed, seconds (the run's, as the command reports it), start_s (the
    index call to the first vector in the writer), steady_img_s (photos/s from the first
    vector to the last), end_s (the last vector to the end of the run)."""
    from finder.library import BackboneChoice, Library

    times: list[float] = []

    def progress(event: object) -> None:
        if getattr(event, "phase", None) == "embed":
            times.append(time.monotonic())

    with Library(library, backbone=BackboneChoice(model=str(model))) as lib:
        started = time.monotonic()
        s = lib.index([str(tree)], progress=progress, ray=ray)
        ended = time.monotonic()
    first, last = (times[0], times[-1]) if times else (ended, ended)
    steady = (len(times) - 1) / (last - first) if len(times) > 1 and last > first else 0.0
    print(
        json.dumps(
            {
                "embedded": s.embedded,
                "failed": s.failed,
                "seconds": s.seconds,
                "start_s": first - started,
                "steady_img_s": steady,
                "end_s": ended - last,
            }
        )
    )


def compare(args: argparse.Namespace) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from finder.embed.cluster_nodes import wait_for_nodes
    from finder.embed.runtime import cpu_count

    work = Path(tempfile.mkdtemp(prefix="finder-bench-ray-"))
    cluster = None
    try:
        tree, n = photo_tree(args.folder, args.limit, work)
        print(f"{n} photos under {tree}; backbone {args.model.name}; {cpu_count()} cores")
        started = time.monotonic()
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": cpu_count(), "include_dashboard": False},
        )
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
        wait_for_nodes(ray, 1)
        ray.shutdown()
        cluster_s = time.monotonic() - started
        print(f"cluster start-up (once, not in the runs): {cluster_s:.1f}s at {cluster.address}")
        runs: dict[str, list[dict]] = {"local": [], "ray": []}
        for r in range(args.rounds):
            order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
            for kind in order:
                address = cluster.address if kind == "ray" else None
                s = index_run(tree, work / f"lib-{kind}", args.model, address)
                if s["embedded"] + s["failed"] != n:
                    sys.exit(f"bench_ray: the {kind} run stored {s['embedded']} of {n}")
                s["rate"] = s["embedded"] / s["seconds"]
                runs[kind].append(s)
                print(
                    f"round {r + 1} {kind:5s}: {s['embedded']} embedded in {s['seconds']:.1f}s "
                    f"= {s['rate']:.1f} photos/s; first vector after {s['start_s']:.1f}s, "
                    f"then {s['steady_img_s']:.1f} photos/s, last to end {s['end_s']:.1f}s "
                    f"(process {s['wall']:.1f}s)"
                )
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {cpu_count()} cores at the end (the machine is shared)")

        def median(kind: str, key: str) -> float:
            return statistics.median(s[key] for s in runs[kind])

        local, clustered = median("local", "rate"), median("ray", "rate")
        start = {k: median(k, "start_s") for k in runs}
        steady = {k: median(k, "steady_img_s") for k in runs}
        print(
            f"local {local:.1f} photos/s, ray {clustered:.1f} photos/s: "
            f"ratio {clustered / local:.2f} (bar >= 0.85)"
        )
        print(
            f"first vector after: local {start['local']:.1f}s, ray {start['ray']:.1f}s; "
            f"steady: local {steady['local']:.1f}, ray {steady['ray']:.1f} photos/s "
            f"(ratio {steady['ray'] / steady['local']:.2f})"
        )
        print(
            json.dumps(
                {
                    "images": n,
                    "local_img_s": round(local, 2),
                    "ray_img_s": round(clustered, 2),
                    "ratio": round(clustered / local, 3),
                    "local_start_s": round(start["local"], 2),
                    "ray_start_s": round(start["ray"], 2),
                    "local_steady_img_s": round(steady["local"], 2),
                    "ray_steady_img_s": round(steady["ray"], 2),
                    "steady_ratio": round(steady["ray"] / steady["local"], 3),
                    "local_end_s": round(median("local", "end_s"), 2),
                    "ray_end_s": round(median("ray", "end_s"), 2),
                    "rounds": args.rounds,
                    "cluster_start_s": round(cluster_s, 1),
                    "load": round(load, 1),
                    "backbone": args.model.name,
                }
            )
        )
    finally:
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)


# -------------------------------------------------------------------------------- stages
def decode_rate(paths: list[str], size: tuple[int, int]) -> float:
    """Photos decoded per CPU-second of one thread (= per core, whatever the machine's load)."""
    from finder.ingest.decode import load_views

    started = time.thread_time()
    done = 0
    for path in paths:
        try:
            load_views(path, size, 1)
            done += 1
        except Exception:  # noqa: BLE001 - a bad file does not stop a measurement
            pass
    return done / (time.thread_time() - started)


def camera_jpegs(paths: list[str], work: Path, n: int = 8) -> list[str]:
    """``n`` 12-megapixel baseline JPEGs like a camera's (4000x3000, quality 92, 4:2:0), made
    from photos upscaled with sensor-like noise so that they weigh what camera files weigh."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for k, path in enumerate(paths[:n]):
        with Image.open(path) as im:
            big = np.asarray(im.convert("RGB").resize((4000, 3000), Image.BICUBIC), np.int16)
        big = np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
        dest = work / f"camera-{k}.jpg"
        Image.fromarray(big).save(dest, "JPEG", quality=92, subsampling=2)
        out.append(str(dest))
    return out


def embed_rate(model: Path | str, paths: list[str]) -> tuple[float, int, float | None]:
    """Photos embedded per CPU-second (all the model's threads): per core; the dimension and
    GFLOPs an image. ``model`` is a model file or a registry name (random weights: the same
    FLOPs as trained ones)."""
    from finder.embed import registry
    from finder.ingest.decode import load_views

    if isinstance(model, Path):
        backbone = registry.build(model=str(model))
    else:
        backbone = registry.build(model, weights=None)
    size = backbone.info.input_size
    images = np.concatenate([load_views(p, size, 1) for p in paths[: backbone.batch_size]])
    backbone.embed(images)  # warm-up: compiled shapes, allocated tensors
    started, cpu, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - started < 10:
        backbone.embed(images)
        n += len(images)
    return n / (time.process_time() - cpu), backbone.info.dim, backbone.gflops


def writer_rate(tree: Path, dim: int, work: Path) -> tuple[float, float]:
    """The single writer alone: finder.sync.store_results fed with random vectors. Photos per
    second of wall time (fsyncs included) and per CPU-second (what the load here takes away)."""
    from finder import sync
    from finder.library import Library

    library = work / f"writer-{dim}"
    rng = np.random.default_rng(0)
    with Library(library) as lib:
        lib.folder.open_catalog_for_writing().set_meta(
            "backbone",
            {
                "name": "synthetic",
                "layer": None,
                "dim": dim,
                "weights": "none",
                "fingerprint": f"random-{dim}",
                "input_size": [224, 224],
            },
        )
        lib.folder.lock()
        store = lib.folder.open_vectors_and_repair()
        cat = lib.folder.open_catalog_for_writing()
        summary = sync.IndexSummary()
        sync.apply_plan(cat, store, sync.plan_root(cat, str(tree)), summary)
        items, _ = sync.pending_items(cat, str(tree))
        vectors = rng.standard_normal((len(items), dim)).astype(np.float32)
        results = ((i, vectors[k], None) for k, (i, _) in enumerate(items))
        started, cpu = time.perf_counter(), time.process_time()
        sync.store_results(cat, store, items, results, summary)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert summary.embedded == len(items)
    shutil.rmtree(library, ignore_errors=True)
    return len(items) / seconds, len(items) / cpu


def stages(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="finder-bench-stages-"))
    try:
        tree, n = photo_tree(args.folder, args.limit, work)
        paths = sorted(f.path for f in crawl.walk([str(tree)]) if not f.is_dir)
        mean_bytes = statistics.mean(os.path.getsize(p) for p in paths)
        decode = decode_rate(paths[:400], (224, 224))
        print(f"decode: {decode:.1f} photos per core-second (224x224, {len(paths[:400])} photos)")
        camera = camera_jpegs(paths, work)
        camera_mb = statistics.mean(os.path.getsize(p) for p in camera) / 1e6
        decode_12mp = decode_rate(camera * 3, (224, 224))
        print(f"decode: {decode_12mp:.1f} photos per core-second (12 MP JPEG, {camera_mb:.1f} MB)")
        embed, dim, _ = embed_rate(args.model, paths)
        print(f"embed:  {embed:.1f} photos per core-second, {args.model.name} ({dim}-d)")
        vgg, _, vgg_gflops = embed_rate("vgg16", paths)
        print(f"embed:  {vgg:.1f} photos per core-second, vgg16 fc1 ({vgg_gflops} GFLOP a photo)")
        writer = {d: writer_rate(tree, d, work) for d in (1024, 4096)}
        for d, (rate, cpu_rate) in writer.items():
            print(
                f"writer: {rate:.0f} photos/s storing {d}-d vectors "
                f"({cpu_rate:.0f} per CPU-second; {n} photos)"
            )
        print(f"photos: {n}, {mean_bytes / 1e3:.0f} kB on average")
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {os.cpu_count()} cores (rates per core are CPU time)")
        print(
            json.dumps(
                {
                    "photos": n,
                    "mean_kb": round(mean_bytes / 1e3, 1),
                    "decode_img_s_per_core": round(decode, 1),
                    "decode_12mp_img_s_per_core": round(decode_12mp, 1),
                    "camera_mb": round(camera_mb, 2),
                    "embed_img_s": round(embed, 1),
                    "embed_backbone": args.model.name,
                    "embed_vgg16_img_s_per_core": round(vgg, 2),
                    "writer_img_s_1024d": round(writer[1024][0], 1),
                    "writer_img_s_4096d": round(writer[4096][0], 1),
                    "writer_img_cpu_s_4096d": round(writer[4096][1], 1),
                    "load": round(load, 1),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", default=SHARED / "tf_flowers")
    ap.add_argument("--limit", type=int, default=None, help="photos at most (default: all)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--stages", action="store_true", help="per-stage figures instead")
    ap.add_argument(
        "--run", nargs=2, type=Path, metavar=("TREE", "LIBRARY"), help=argparse.SUPPRESS
    )
    ap.add_argument("--ray", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:  # one run, in the process index_run started
        run_one(args.run[0], args.run[1], args.model, args.ray)
        return
    if not args.folder.is_dir() or not args.model.is_file():
        sys.exit(f"bench_ray: needs {args.folder} and {args.model}")
    if args.stages:
        stages(args)
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("bench_ray: needs Ray: pip install 'finder[ray]'")
    compare(args)


if __name__ == "__main__":
    main()
