"""Kill `finder index` with SIGKILL at random moments and check that every recovery is whole.

    python scripts/chaos_index.py --kills 50

Works on a scratch copy of real photos (../shared/photos by default, copied to a temporary
folder so that the tree can change between runs: files are deleted, moved and added). Each
round starts `python -m finder index` on the scratch tree and kills it after a random delay
(sometimes during start-up, mostly while it embeds and commits). Then it opens the library the
way the next run would (which repairs it) and checks the invariant:

* every catalog image with status ok has exactly one vector, and every vector belongs to one;
* no image that was indexed and unchanged when the run started was lost.

At the end one uninterrupted run must complete the library. The last line reads like
`50 kills, 0 inconsistencies`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from finder.library import Library  # noqa: E402
from finder.store.catalog import OK  # noqa: E402


def check(library: Path, before_ok: set[str]) -> list[str]:
    """Open (and so repair) the library; return what is inconsistent."""
    problems = []
    with Library(library) as lib:
        if not lib.exists or not lib.backbone_info:
            return problems
        store = lib.store  # opening repairs a dirty library
        if os.environ.get("CHAOS_VERBOSE"):
            print("   ", lib.messages)
        ok_ids = np.asarray(sorted(lib.catalog.ok_ids()), dtype=np.int64)
        vec_ids = np.asarray(store.ids(), dtype=np.int64)
        if len(np.unique(vec_ids)) != len(vec_ids):
            problems.append(f"{len(vec_ids) - len(np.unique(vec_ids))} ids with two vectors")
        if not np.array_equal(np.sort(np.unique(vec_ids)), ok_ids):
            extra = np.setdiff1d(vec_ids, ok_ids)
            missing = np.setdiff1d(ok_ids, vec_ids)
            problems.append(f"{len(extra)} stray vectors, {len(missing)} ok images without one")
        if len(ok_ids):
            got = store.get(ok_ids[: min(len(ok_ids), 50)])
            if not np.all(np.isfinite(got)) or np.any(
                np.abs(np.linalg.norm(got, axis=1) - 1) > 1e-2
            ):
                problems.append("vectors that are not finite unit vectors")
        now_ok = {
            p
            for p in lib.catalog.paths_for(lib.catalog.ok_ids()).values()
            if lib.catalog.image_by_path(p).status == OK
        }
        lost = before_ok - now_ok
        if lost:
            example = sorted(lost)[0]
            row = lib.catalog.image_by_path(example)
            state = row.status if row else "no catalog row"
            if os.environ.get("CHAOS_VERBOSE") and row:
                st = os.stat(example)
                state += f" catalog {row.size}/{row.mtime_ns} file {st.st_size}/{st.st_mtime_ns}"
                mx = lib.catalog.db.execute("select max(id), min(id) from images").fetchone()
                upd = lib.catalog.db.execute(
                    "select updated from images where id = ?", [row.id]
                ).fetchone()[0]
                state += f" id {row.id} max/min {mx} updated {time.time() - upd:.1f}s ago"
            problems.append(f"{len(lost)} indexed images lost, e.g. {example} ({state})")
    return problems


def ok_paths(library: Path, up_to_date: bool = False) -> set[str]:
    """Paths indexed ok; with ``up_to_date``, only those whose file is unchanged since."""
    with Library(library) as lib:
        if not lib.exists:
            return set()
        paths = set(lib.catalog.paths_for(lib.catalog.ok_ids()).values())
        if not up_to_date:
            return paths
        fresh = set()
        for p in paths:
            row = lib.catalog.image_by_path(p)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if row and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns):
                fresh.add(p)
        return fresh


def mutate(tree: Path, rng: random.Random, spare: list[Path], n_touch: int) -> None:
    """Touch ``n_touch`` photos (so they are embedded again), delete one, move one, add one."""
    files = sorted(p for p in tree.rglob("*.jpg"))
    touched: set[str] = set()
    for p in rng.sample(files, min(n_touch, len(files))):
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + rng.randrange(1, 10**9)))
        touched.add(str(p))
    if len(files) > 10:
        gone = rng.choice(files)
        touched.add(str(gone))
        gone.unlink()
        files.remove(gone)
        mover = rng.choice(files)
        target = mover.with_name(f"moved-{rng.randrange(10**9)}.jpg")
        touched.add(str(mover))
        mover.rename(target)
    if spare:
        src = spare.pop()
        shutil.copy2(src, tree / "added" / f"new-{rng.randrange(10**9)}.jpg")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--photos", type=Path, default=SHARED / "photos")
    ap.add_argument(
        "--model",
        type=Path,
        default=SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    )
    ap.add_argument("--max-delay", type=float, default=16.0, help="seconds before a kill, at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--touch", type=int, default=80, help="photos changed before each run")
    args = ap.parse_args()
    if not args.photos.is_dir() or not args.model.is_file():
        sys.exit(f"chaos_index: needs {args.photos} and {args.model}")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="finder-chaos-"))
    tree, library = work / "tree", work / "library"
    shutil.copytree(args.photos, tree)
    (tree / "added").mkdir()
    spare = sorted(args.photos.rglob("*.jpg"))
    rng.shuffle(spare)
    cmd = [sys.executable, "-m", "finder", "index", str(tree), "--library", str(library)]
    cmd += ["--model", str(args.model), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    inconsistencies = 0
    completed_runs = 0
    try:
        for k in range(1, args.kills + 1):
            mutate(tree, rng, spare, args.touch)
            before = ok_paths(library, up_to_date=True)  # indexed, and unchanged since
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            delay = rng.uniform(0.2, args.max_delay)
            try:
                proc.wait(timeout=delay)
                completed_runs += 1  # it finished before the kill: nothing to kill this time
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            problems = check(library, before)
            status = "ok" if not problems else "; ".join(problems)
            inconsistencies += bool(problems)
            print(f"kill {k:3d} after {delay:5.2f}s: {len(ok_paths(library))} indexed, {status}")
            sys.stdout.flush()
        final = subprocess.run(cmd, env=env, capture_output=True, timeout=3600)
        problems = check(library, set())
        n_files = sum(1 for _ in tree.rglob("*.jpg"))
        indexed = len(ok_paths(library))
        if final.returncode != 0 or problems or indexed != n_files:
            inconsistencies += 1
            print(
                f"final run: exit {final.returncode}, {indexed} of {n_files} indexed, "
                f"{problems or ''} {final.stderr.decode()[-500:]}"
            )
        else:
            print(f"final run completed the library: {indexed} of {n_files} photos indexed")
        if completed_runs:
            print(f"({completed_runs} runs finished before their kill was due)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.kills} kills, {inconsistencies} inconsistencies")


if __name__ == "__main__":
    started = time.monotonic()
    main()
