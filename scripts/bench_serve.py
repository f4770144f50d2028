"""How fast ``finder serve`` answers: a class page, thumbnails cold and warm, a click.

    python scripts/bench_serve.py                    # 100,000 images, 1024-d (MobileNet's)
    python scripts/bench_serve.py --n 100000 --dim 4096

One run, side by side:

1. A library of ``--n`` images is built directly (no embedding): a catalog whose files are
   symbolic links to real photos (``../shared/photos``, else generated ones), cycled, so every
   image has a real thumbnail; and a vector store of synthetic unit vectors in clusters of
   about 100 (``--n / 100`` clusters, each a random centre plus noise), indexed as finder
   indexes it (exact up to 10,000 images, then PCA + IVF). A class "c0" is learned from 5
   images of cluster 0 through ``Library.learn_ids`` (what a click calls).
2. ``finder serve``'s app runs under a real uvicorn on 127.0.0.1 in this process (in a thread,
   with the server's own settings); an HTTP client in this process asks it, one request at a
   time, as a browser tab would.
3. ``page``: the class page (``/class/c0``, 100 photos) and its 100 thumbnails, warm (made
   before). The server time is the sum of the app's ``Server-Timing`` over the 101 requests;
   the wall time, client included, and the CPU time of the server's threads are reported
   beside it.
4. ``thumb_cold``: thumbnails made on demand (cache emptied) for ``--cold`` images of camera
   size (12 MP JPEGs made from the photos), one request at a time: per second of server time
   (``thumb_cold_per_s``) and of wall time (``thumb_cold_wall_per_s``); beside them, the same
   files through the draft decode alone (``decode.load_rgb`` at the thumbnail's size), the floor.
   ``thumb_cold_parallel_per_s``: the same with 6 requests in flight, as a browser sends them.
5. ``feedback``: a click as the page makes it: one ``POST /class/c0?limit=100`` (✓ a photo of
   cluster 0 from the ranking, or ✗ one of another cluster, alternately), which teaches the
   class and answers with the re-ranked page, its "is this right?" strip included. Median over
   ``--clicks`` clicks, and the CPU time of the server's threads per click (what a click costs
   when the machine is not shared; it also counts the page read before each click to choose
   the photo). Side by side, in alternate pairs of clicks, the three requests the page made
   before (``feedback_3_requests_ms_p50``): ``POST /api/learn/c0``, the re-ranked page
   (``GET /class/c0?limit=100``), then the strip (``GET /review/c0``); and the first two alone
   (``feedback_page_first_ms_p50``: when the person saw the new ranking then).
   ``review_ms_p50``: the older "is this right?" row (``/review/c0``). Since strips (issue
   23) a click's answer no longer carries that row (the page keeps its strip as it is), so
   ``feedback_ms_p50`` is lower than in runs before them by the row's cost.
6. ``strip``: a strip of 20 confirmed as the page confirms it: one ``POST
   /strip/c0?n=20&limit=100`` with the strip's ✓ (the photos of cluster 0) and ✗ (the rest),
   which teaches all 20 at once (one retraining) and answers with the re-ranked class page and
   the next strip in it. ``strip_ms_p50``: its server time (``Server-Timing``), median over
   ``--strips`` strips; ``strip_wall_ms_p50``: request to the next strip received;
   ``strip_server_cpu_ms_mean``; ``strip_first_ms_p50``: the page's first strip
   (``GET /strip/c0``, drawn over every unmarked image).

7. ``find``: after the server stopped, ``Library.find`` in this process, its default answer
   (re-ranked near the cut by the library's neighbour graph, ``finder/neighbours.py``;
   ``find_ms_p50``) against the head's own (``--min-prob`` at the cut: ``find_head_ms_p50``),
   and how many photos the re-rank changed (``find_changed``). The graph is built once per
   library, as an index run's settle builds it (``graph_build_s``, when it was built now).

Every figure is wall-clock time unless named cpu; ``load_avg`` says how busy the machine was.

The last line is one JSON object: n, page_ms_p50, thumb_cold_per_s, thumb_warm_ms_p50,
feedback_ms_p50 and more. Bars (issue 11): page < 150 ms of server time, feedback < 1 s
median at 100,000 images, cold thumbnails at the speed of the draft decode; issue 23:
strip_ms_p50 < 1 s at 100,000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finder.ingest.crawl import FileFact  # noqa: E402
from finder.ingest.decode import load_rgb  # noqa: E402
from finder.library import Library  # noqa: E402
from finder.store import graph as graphs  # noqa: E402
from finder.store.catalog import Catalog  # noqa: E402
from finder.store.thumbs import SIZE  # noqa: E402
from finder.store.vectors import VectorStore  # noqa: E402

SHARED_PHOTOS = REPO.parent / "shared" / "photos"
TOKEN = "bench"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def source_photos(work: Path) -> list[Path]:
    """The real photos to link to, or 64 generated ones when ../shared is absent."""
    if SHARED_PHOTOS.is_dir():
        return sorted(p for p in SHARED_PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    from PIL import Image

    out = []
    rng = np.random.default_rng(0)
    for k in range(64):
        path = work / "generated" / f"{k}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC).save(path)
        out.append(path)
    return out


def camera_photos(sources: list[Path], work: Path, count: int) -> list[Path]:
    """``count`` 4000x3000 JPEGs (quality 90) made from the photos: what a camera writes."""
    from PIL import Image

    out = []
    for k in range(count):
        path = work / "camera" / f"{k}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(sources[k % len(sources)]) as im:
                big = im.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
            big.save(path, quality=90)
        out.append(path)
    return out


def build(directory: Path, n: int, dim: int, sources: list[Path], camera: list[Path]) -> None:
    """A library of n images (links to real photos) with synthetic clustered vectors."""
    links = directory / "photos"
    facts = []
    for k in range(n):
        link = links / str(k // 1000) / f"{k}.jpg"
        if k < len(camera):  # the first images are camera-size: the cold thumbnails
            target = camera[k]
        else:
            target = sources[k % len(sources)]
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)
        st = link.stat()
        facts.append(FileFact(str(link), st.st_size, st.st_mtime_ns))
    catalog = Catalog(directory / "catalog.db")
    ids = catalog.insert_pending(facts)
    info = {"name": "synthetic", "layer": None, "dim": dim, "weights": "none"}
    info |= {"fingerprint": "bench", "input_size": [224, 224], "views": 1}
    catalog.set_meta("backbone", info)
    store = VectorStore(directory / "vectors", dim)
    rng = np.random.default_rng(0)
    clusters = max(1, n // 100)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids_arr = np.asarray(ids, dtype=np.int64)
    for start in range(0, n, 16384):
        chunk = ids_arr[start : start + 16384]
        which = (chunk - ids_arr[0]) % clusters  # cluster of an image: its rank mod clusters
        x = centres[which] + 0.045 * rng.standard_normal((len(chunk), dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        store.add(chunk, x)
    store.commit()
    catalog.record_results([(int(i), None) for i in ids], [])
    store.save_index()
    catalog.set_meta("index_name", store.index_name())
    catalog.set_meta("dirty", False)
    store.close()
    catalog.close()


class Served:
    """The app under uvicorn in a thread, as ``finder serve`` runs it."""

    def __init__(self, library: Path) -> None:
        import httpx
        import uvicorn

        from finder.show.web.app import create_app
        from finder.show.web.server import bind, one_blas_thread, reuse_freed_memory

        one_blas_thread()
        reuse_freed_memory()
        self.sock = bind("127.0.0.1", 0)
        port = self.sock.getsockname()[1]
        app = create_app(library, token=TOKEN, port=port)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, params={"token": TOKEN}, timeout=120)
        self.library = library

    def get(self, path: str, **params) -> tuple[float, float, object]:
        """(server ms, wall ms, response) of one GET."""
        t = time.perf_counter()
        r = self.client.get(path, params=params)
        wall = (time.perf_counter() - t) * 1000
        r.raise_for_status()
        return server_ms(r), wall, r

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def server_cpu_ms() -> float:
    """CPU time so far of this process but its main thread (the client): the server's event
    loop, the library's thread, the decoders, and the threads they start and end (a scan's, a
    head's folds): the process's times count those once they end, where the live threads'
    ``/proc/self/task`` (what this read before) missed them. Call it from the main thread."""
    t = resource.getrusage(resource.RUSAGE_SELF)
    return (t.ru_utime + t.ru_stime - time.thread_time()) * 1000


def server_ms(response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def p50(values: list[float]) -> float:
    return float(statistics.median(values))


def page_ids(html: str) -> list[int]:
    grid = html.split('id="grid"', 1)[1]
    return [int(x.split('"')[0]) for x in grid.split('class="card" data-id="')[1:]]


def strip_tiles(html: str) -> list[int]:
    """The ids of the strip on a page (``_strip.html``), in order."""
    return [int(x) for x in re.findall(r'class="verdict [^"]*" data-id="(\d+)"', html)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="images in the library")
    parser.add_argument("--dim", type=int, default=1024, help="vector dimension")
    parser.add_argument("--repeat", type=int, default=15, help="class pages timed")
    parser.add_argument("--cold", type=int, default=60, help="cold thumbnails timed")
    parser.add_argument("--clicks", type=int, default=20, help="clicks timed")
    parser.add_argument("--strips", type=int, default=6, help="strips of 20 confirmed, timed")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (kept)")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    directory = work / f"library-{args.n}-{args.dim}"
    sources = source_photos(work)
    camera = camera_photos(sources, work, args.cold)
    if not (directory / "catalog.db").exists():
        say(f"building a library of {args.n} images, {args.dim}-d, in {directory}")
        t = time.perf_counter()
        build(directory, args.n, args.dim, sources, camera)
        say(f"built in {time.perf_counter() - t:.1f} s")
    with Library(directory) as lib:
        first = sorted(lib.folder.open_catalog_for_writing().ok_ids())
        clusters = max(1, args.n // 100)
        members = [i for i in first[: 100 * clusters : clusters]]  # cluster 0
        if "c0" in {c["name"] for c in lib.classes()}:
            lib.forget("c0")  # a run reused with --workdir starts from the same class
        lib.learn_ids("c0", members[:5])
        index_name = lib.status()["index"]
        # the neighbour graph, as an index run's settle leaves it (built once per library)
        t = time.perf_counter()
        graph_lists = graphs.refresh(lib.folder.dir, lib.folder.open_vectors_for_writing())
        graph_s = time.perf_counter() - t
        if graph_lists:
            say(f"neighbour graph: {graph_lists} lists in {graph_s:.1f} s")

    served = Served(directory)
    load_before = os.getloadavg()[0]
    try:
        result = measure(served, args, members, first, clusters, camera)
    finally:
        served.stop()
    result |= find_times(directory)
    result = {"n": args.n, "dim": args.dim, "index": index_name, **result}
    if graph_lists:
        result["graph_build_s"] = round(graph_s, 1)
    # other work on the machine stretches every wall-clock figure: say how busy it was
    result["load_avg"] = round((load_before + os.getloadavg()[0]) / 2, 1)
    result["cores"] = os.cpu_count()
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


def find_times(directory: Path) -> dict[str, float]:
    """``find``'s default answer (re-ranked near the cut by the neighbour graph), against the
    head's own (``--min-prob`` at the cut: the answer before the re-rank), in this process
    after the server stopped: median of 5 each, and how many photos the re-rank changed."""
    with Library(directory) as lib:
        threshold = lib.class_record("c0")["threshold"]
        lib.find("c0")  # warm: the graph read once, the vectors open
        smoothed, own = [], []
        for _ in range(5):
            t = time.perf_counter()
            a = {m.id for m in lib.find("c0")}
            smoothed.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            b = {m.id for m in lib.find("c0", min_prob=threshold)}
            own.append((time.perf_counter() - t) * 1000)
        return {
            "find_ms_p50": round(p50(smoothed), 1),
            "find_head_ms_p50": round(p50(own), 1),
            "find_answer": len(a),
            "find_changed": len(a ^ b),
        }


def measure(served: Served, args, members: list[int], ids: list[int], clusters: int, camera):
    out: dict[str, float] = {}
    # -- the class page with warm thumbnails
    _, _, r = served.get("/class/c0", limit=100)
    shown = page_ids(r.text)
    for i in shown:
        served.get(f"/thumb/{i}")  # made now: warm from here on
    page_server, page_wall, thumb_server = [], [], []
    cpu_start = server_cpu_ms()
    for _ in range(args.repeat):
        s, w, r = served.get("/class/c0", limit=100)
        total_s, total_w = s, w
        for i in page_ids(r.text):
            ts, tw, _ = served.get(f"/thumb/{i}")
            total_s += ts
            total_w += tw
            thumb_server.append(ts)
        page_server.append(total_s)
        page_wall.append(total_w)
    out["page_ms_p50"] = round(p50(page_server), 1)
    out["page_wall_ms_p50"] = round(p50(page_wall), 1)
    out["page_server_cpu_ms_mean"] = round((server_cpu_ms() - cpu_start) / args.repeat, 1)
    out["page_html_ms_p50"] = round(p50([served.get("/class/c0")[0] for _ in range(5)]), 1)
    out["thumb_warm_ms_p50"] = round(p50(thumb_server), 3)
    out["review_ms_p50"] = round(p50([served.get("/review/c0")[0] for _ in range(5)]), 1)

    # -- cold thumbnails of camera-size photos, against the draft decode alone
    cold_ids = ids[: len(camera)]
    thumbs = served.library / "thumbs"
    shutil.rmtree(thumbs, ignore_errors=True)
    t = time.perf_counter()
    cold_server = sum(served.get(f"/thumb/{i}")[0] for i in cold_ids) / 1000
    out["thumb_cold_per_s"] = round(len(cold_ids) / cold_server, 1)  # server time
    out["thumb_cold_wall_per_s"] = round(len(cold_ids) / (time.perf_counter() - t), 1)
    t = time.perf_counter()
    for path in camera:
        load_rgb(path, (SIZE, SIZE), cover=1.0)
    out["draft_decode_per_s"] = round(len(camera) / (time.perf_counter() - t), 1)
    shutil.rmtree(thumbs, ignore_errors=True)
    t = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: served.client.get(f"/thumb/{i}").raise_for_status(), cold_ids))
    out["thumb_cold_parallel_per_s"] = round(len(cold_ids) / (time.perf_counter() - t), 1)

    # -- a click: retrain, then the re-ranked page
    others = [i for i in ids[1 : 100 * clusters : clusters]]  # cluster 1: not c0
    feedback, learn, before, before_page = [], [], [], []
    one_cpu = 0.0
    marked = set(members[:5])
    for k in range(args.clicks):
        _, _, r = served.get("/class/c0", limit=100)
        ranking = page_ids(r.text)
        if k % 2 == 0:  # ✓ the lowest-ranked member of c0 on the page (or any unmarked one)
            pick = next(i for i in reversed(ranking + members) if i in members and i not in marked)
            body = {"add": [pick]}
        else:  # ✗ a photo of another cluster
            pick = next(i for i in others if i not in marked)
            body = {"not": [pick]}
        marked.add(pick)
        if k // 2 % 2 == 0:  # as the page clicks: one request brings the page back
            cpu_start = server_cpu_ms()
            t = time.perf_counter()
            r = served.client.post("/class/c0", json=body, params={"limit": 100})
            r.raise_for_status()
            feedback.append((time.perf_counter() - t) * 1000)
            one_cpu += server_cpu_ms() - cpu_start
        else:  # as the page clicked before: three requests
            t = time.perf_counter()
            r = served.client.post("/api/learn/c0", json=body)
            r.raise_for_status()
            learn.append((time.perf_counter() - t) * 1000)
            served.get("/class/c0", limit=100)
            before_page.append((time.perf_counter() - t) * 1000)
            served.get("/review/c0")
            before.append((time.perf_counter() - t) * 1000)
    out["feedback_ms_p50"] = round(p50(feedback), 1)
    out["feedback_ms_p90"] = round(float(np.percentile(feedback, 90)), 1)
    out["feedback_3_requests_ms_p50"] = round(p50(before), 1)
    out["feedback_page_first_ms_p50"] = round(p50(before_page), 1)
    # the server's CPU per click (the POST alone; the page read to pick the photo apart)
    out["feedback_server_cpu_ms_mean"] = round(one_cpu / max(1, len(feedback)), 1)
    out["learn_ms_p50"] = round(p50(learn), 1)

    # -- a strip of 20 confirmed: taught at once, the re-ranked page and the next strip back
    truth = set(members)
    first_strip, strip_server, strip_wall = [], [], []
    strip_cpu = 0.0
    html = None
    for _ in range(args.strips):
        if html is None:  # the page's first strip; after that, each answer carries the next
            s, _, r = served.get("/strip/c0", n=20)
            first_strip.append(s)
            html = r.text
        tiles = strip_tiles(html)
        body = {
            "add": [i for i in tiles if i in truth],
            "not": [i for i in tiles if i not in truth],
        }
        cpu_start = server_cpu_ms()
        t = time.perf_counter()
        r = served.client.post("/strip/c0", json=body, params={"n": 20, "limit": 100})
        r.raise_for_status()
        strip_wall.append((time.perf_counter() - t) * 1000)
        strip_cpu += server_cpu_ms() - cpu_start
        strip_server.append(server_ms(r))
        html = r.text
        assert len(strip_tiles(html)) == 20 and not set(tiles) & set(strip_tiles(html))
        if len(strip_server) % 2 == 0:
            html = None  # every other strip, the page fetched anew (as a page opened again)
    out["strip_ms_p50"] = round(p50(strip_server), 1)
    out["strip_wall_ms_p50"] = round(p50(strip_wall), 1)
    out["strip_server_cpu_ms_mean"] = round(strip_cpu / max(1, len(strip_server)), 1)
    out["strip_first_ms_p50"] = round(p50(first_strip), 1)
    return out


if __name__ == "__main__":
    main()
