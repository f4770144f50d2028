"""How fast `finder index --watch` takes in what arrives, measured side by side in one run.

    python scripts/bench_watch.py [--burst 800] [--singles 11] [--rounds 3]

A watcher (`python -m finder index ROOT --watch --json`, the shared TFLite MobileNet) follows a
root that starts with the 540 photos of ../shared/photos and a class learned from five of them.
Another process (a reader: a fresh `Library` per look, what `finder find` opens) looks for each
photo that arrives. Measured:

- **single_photo_s_p50**: a photo of ../shared/tf_flowers copied into the root, until the
  reader's `find` returns it (median of ``--singles``). ``find_command_s_p50`` is what one
  `python -m finder find` process takes on this machine, for reference (it starts Python and
  opens the library: add it to the former for a person typing the command);
  ``single_photo_cli_s_p50`` is, for the first few photos, the end of the first such process
  started at the copy that returns it.
- **burst**: ``--burst`` photos of tf_flowers copied into a new folder of the root one after
  another (a card import), until `status` counts them all, nothing pending: photos a second,
  against a plain `finder index` of the same photos into a fresh library in the same round
  (its ``embedded / seconds``, the rate the index line reports). Rounds alternate which goes
  first; ``burst_ratio`` is the median of the rounds' ratios.
- **rename**: that folder renamed, until the catalog holds all its photos at their new paths
  with their ids, and how many were embedded again (from the watcher's batch lines).

The machine's load (``uptime``) is printed before and after. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO))

from finder.library import Library  # noqa: E402
from finder.store.catalog import OK  # noqa: E402

READER = textwrap.dedent(
    """
    import sys, time
    from finder.library import Library
    library, name = sys.argv[1], sys.argv[2]
    for line in sys.stdin:
        path, deadline = line.rstrip("\\n"), time.time() + 120
        while time.time() < deadline:
            with Library(library) as lib:
                if any(m.path == path for m in lib.find(name, min_prob=0.0)):
                    break
            time.sleep(0.02)
        print(time.time(), flush=True)
    """
)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def finder(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "finder", *args], capture_output=True, cwd=REPO, **kw
    )


class Watcher:
    def __init__(self, library: Path, root: Path) -> None:
        cmd = [sys.executable, "-m", "finder", "index", str(root), "--watch", "--json"]
        cmd += ["--library", str(library), "--model", str(MODEL), "--quiet"]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[dict] = []
        self.arrived: list[float] = []  # when each line came (time.monotonic())
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        until(lambda: any("watching" in e for e in self.err), 600, "the watcher's first pass")

    def _read(self) -> None:
        for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                self.arrived.append(time.monotonic())
                self.lines.append(json.loads(raw))

    def _read_err(self) -> None:
        for raw in self.proc.stderr:
            self.err.append(raw.decode(errors="replace"))

    def embedded(self, since: int = 0) -> int:
        return sum(d["embedded"] for d in self.lines[since:] if d.get("batch"))

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.wait(timeout=120)


def until(check, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise SystemExit(f"bench_watch: {what} did not happen within {timeout:.0f} s")


def counts(library: Path, folder: Path | None = None) -> tuple[int, int]:
    """(ok images, pending images), under ``folder`` when given."""
    with Library(library) as lib:
        cat = lib.folder.open_catalog()
        if folder is None:
            c = cat.counts()
            return c[OK], c["pending"]
        return cat.count_under(str(folder), OK), cat.count_under(str(folder), "pending")


def copy_in(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, folder / f.name)


def plain_rate(files: list[Path], work: Path, k: int) -> float:
    lib = work / f"plain-{k}"
    src = work / f"plain-src-{k}"
    copy_in(files, src)
    out = finder("index", str(src), "--library", str(lib), "--model", str(MODEL), "--json")
    if out.returncode:
        raise SystemExit(f"bench_watch: the plain index failed: {out.stderr.decode()[-500:]}")
    summary = json.loads(out.stdout)
    shutil.rmtree(lib)
    shutil.rmtree(src)
    return summary["embedded"] / summary["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--burst", type=int, default=800)
    ap.add_argument("--singles", type=int, default=11)
    ap.add_argument("--cli-singles", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # The watcher is stopped as Ctrl-C stops it. A shell without job control starts a background
    # job with SIGINT ignored, and its children inherit that; a handler of ours is reset to the
    # default in them instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for need in (MODEL, SHARED / "photos", SHARED / "tf_flowers"):
        if not need.exists():
            raise SystemExit(f"bench_watch: needs {need}")
    flowers = sorted(p for p in (SHARED / "tf_flowers").rglob("*.jpg"))
    needed = args.singles + args.cli_singles + args.rounds * args.burst
    if len(flowers) < needed:
        raise SystemExit(f"bench_watch: needs {needed} photos in tf_flowers, has {len(flowers)}")
    singles = flowers[: args.singles + args.cli_singles]
    bursts = [
        flowers[len(singles) + r * args.burst : len(singles) + (r + 1) * args.burst]
        for r in range(args.rounds)
    ]
    load_before = load()
    print(f"load before: {load_before}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        root = work / "root"
        shutil.copytree(SHARED / "photos", root / "photos")
        library = work / "library"
        watcher = Watcher(library, root)
        try:
            cats = sorted((root / "photos" / "pets" / "cat").glob("*.jpg"))[:5]
            out = finder("learn", "cat", *map(str, cats), "--library", str(library))
            if out.returncode:
                raise SystemExit(f"bench_watch: learn failed: {out.stderr.decode()[-500:]}")
            result = run(args, watcher, library, root, work, singles, bursts)
        finally:
            watcher.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = load()
    print(f"load after: {load_after}", flush=True)
    result["load_before"] = load_before.split("load average:")[-1].strip()
    result["load_after"] = load_after.split("load average:")[-1].strip()
    print(json.dumps(result))


def run(args, watcher: Watcher, library: Path, root: Path, work: Path, singles, bursts) -> dict:
    # -- single photos: until another process's find returns each -------------------------
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(library), "cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    drop = root / "arrivals"
    drop.mkdir()
    time.sleep(2)
    lat = []
    for f in singles[: args.singles]:
        dest = drop / f.name
        t0 = time.time()
        shutil.copyfile(f, dest)
        reader.stdin.write(f"{dest}\n")
        reader.stdin.flush()
        lat.append(float(reader.stdout.readline()) - t0)
        print(f"single photo findable after {lat[-1]:.2f} s", flush=True)
        time.sleep(0.5)
    reader.stdin.close()
    reader.wait()
    cli, command = [], []
    for f in singles[args.singles :]:
        dest = drop / f.name
        t0 = time.time()
        shutil.copyfile(f, dest)
        while True:
            s = time.time()
            out = finder("find", "cat", "--min-prob", "0", "--json", "--library", str(library))
            command.append(time.time() - s)
            if any(m["path"] == str(dest) for m in json.loads(out.stdout or b"[]")):
                cli.append(time.time() - t0)
                break
        print(f"single photo returned by a `finder find` process after {cli[-1]:.2f} s")
    # -- bursts against plain index runs, then the rename ---------------------------------
    ratios, burst_rates, plain_rates, renames, reembedded = [], [], [], [], []
    for k, files in enumerate(bursts):
        order = ("plain", "burst") if k % 2 == 0 else ("burst", "plain")
        for what in order:
            if what == "plain":
                plain_rates.append(plain_rate(files, work, k))
                print(f"round {k}: plain index {plain_rates[-1]:.1f} photos/s", flush=True)
                continue
            card = root / f"card-{k}"
            ok0, _ = counts(library)
            seen = len(watcher.lines)
            t0 = time.monotonic()
            copy_in(files, card)
            # the end: the watcher's batch line that completes the card (printed once its
            # batch is committed), then checked from this process: all ok, none pending
            n = len(files)
            until(lambda s=seen, n=n: watcher.embedded(s) >= n, 1800, "the burst")
            burst_rates.append(len(files) / (watcher.arrived[-1] - t0))
            if counts(library) != (ok0 + len(files), 0):
                raise SystemExit(f"bench_watch: after the burst, status says {counts(library)}")
            waves = [d["embedded"] for d in watcher.lines[seen:] if d.get("batch")]
            print(f"round {k}: burst {burst_rates[-1]:.1f} photos/s, in batches of {waves}")
        ratios.append(burst_rates[-1] / plain_rates[-1])
        before = watcher.embedded()
        with Library(library) as lib:
            ids = set(lib.folder.open_catalog().ids_under(str(card)))
        t0 = time.monotonic()
        renamed = root / f"renamed-{k}"
        os.rename(card, renamed)

        def moved(renamed=renamed, card=card, ids=ids) -> bool:
            with Library(library) as lib:
                return set(
                    lib.folder.open_catalog().ids_under(str(renamed), OK)
                ) == ids and not lib.folder.open_catalog().has_under(str(card))

        until(moved, 600, "the rename", every=0.05)
        renames.append(time.monotonic() - t0)
        time.sleep(3)  # anything embedded late would show now
        reembedded.append(watcher.embedded() - before)
        print(
            f"round {k}: folder of {len(files)} renamed in {renames[-1]:.2f} s, "
            f"{reembedded[-1]} embedded again",
            flush=True,
        )
    return {
        "single_photo_s_p50": round(statistics.median(lat), 3),
        "burst_photos": len(bursts[0]),
        "burst_img_s": round(statistics.median(burst_rates), 2),
        "plain_index_img_s": round(statistics.median(plain_rates), 2),
        "burst_ratio": round(statistics.median(ratios), 3),
        "rename_folder_s": round(max(renames), 3),
        "reembedded_on_rename": max(reembedded),
        "single_photo_s_max": round(max(lat), 3),
        "find_command_s_p50": round(statistics.median(command), 3) if command else None,
        "single_photo_cli_s_p50": round(statistics.median(cli), 3) if cli else None,
        "burst_ratios": [round(r, 3) for r in ratios],
    }


if __name__ == "__main__":
    main()
