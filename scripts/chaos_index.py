"""Kill `finder index` with SIGKILL at random moments, damage the library now and then, and
check that every recovery is whole.

    python scripts/chaos_index.py --kills 50 --corrupt 0.4

Works on a scratch copy of real photos (../shared/photos by default, copied to a temporary
folder so that the tree can change between runs: files are deleted, moved and added). Each
round starts `python -m finder index` on the scratch tree and kills it after a random delay
(sometimes during start-up, mostly while it embeds and commits). Then it opens the library the
way the next run would (which repairs it) and checks the invariant:

* every catalog image with status ok has exactly one vector, and every vector belongs to one;
* no image that was indexed and unchanged when the run started was lost;
* a settled library's neighbour graph (``finder.store.graph``) is readable and its vectors'.

With ``--corrupt P`` a round is, with probability P, followed by damage that no kill can cause
(``CORRUPTIONS``: garbage catalog pages, truncated or garbage vectors and ids, a deleted search
index, hand-edited meta, a kill around compaction, a truncated or garbage neighbour graph).
Then commands meet the damage (each must answer in one line, never a traceback), one `finder
repair` and one `finder index` run, and every photo indexed and unchanged before must be back
in answers (else it counts as lost).

At the end one uninterrupted run must complete the library. The last line reads like
`50 kills, 20 corruptions, 0 tracebacks, 0 inconsistencies, 0 photos lost`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finder.library import Library  # noqa: E402
from finder.store import graph as graphs  # noqa: E402
from finder.store.catalog import OK  # noqa: E402
from scripts.chaos_run import data_flags, finder, finder_env, killed_after, tracebacks  # noqa: E402

CORRUPTIONS = (
    "catalog-page",
    "meta-schema",
    "meta-backbone",
    "meta-dirty",
    "vectors-truncated",
    "vectors-garbage",
    "ids-truncated",
    "ids-garbage",
    "index-deleted",
    "kill-compaction",
    "graph-truncated",
    "graph-garbage",
)


def check(library: Path, before_ok: set[str]) -> list[str]:
    """Open (and so repair) the library; return what is inconsistent."""
    problems = []
    with Library(library) as lib:
        if not lib.exists or not lib.folder.recorded_backbone():
            return problems
        store = lib.folder.open_vectors_and_repair()  # opening repairs a dirty library
        if os.environ.get("CHAOS_VERBOSE"):
            print("   ", lib.messages)
        # ok photos and the frames of ok videos hold a vector; a pending photo may keep its old
        # one until the new one replaces it (finder.store.frames)
        held = lib.folder.open_catalog_for_writing().vector_ids()
        ok_ids = held.required
        vec_ids = np.asarray(store.ids(), dtype=np.int64)
        if len(np.unique(vec_ids)) != len(vec_ids):
            problems.append(f"{len(vec_ids) - len(np.unique(vec_ids))} ids with two vectors")
        extra = np.setdiff1d(vec_ids, held.allowed)
        missing = np.setdiff1d(ok_ids, vec_ids)
        if len(extra) or len(missing):
            problems.append(f"{len(extra)} stray vectors, {len(missing)} ok images without one")
        settled = not lib.folder.open_catalog_for_writing().get_meta("dirty")
        problems += [f"graph: {line}" for line in graphs.problems(library, store, settled=settled)]
        short = lib.folder.open_catalog_for_writing().incomplete_videos()
        if short:
            problems.append(f"{len(short)} ok videos missing frames")
        if len(ok_ids):
            got = store.get(ok_ids[: min(len(ok_ids), 50)])
            if not np.all(np.isfinite(got)) or np.any(
                np.abs(np.linalg.norm(got, axis=1) - 1) > 1e-2
            ):
                problems.append("vectors that are not finite unit vectors")
        now_ok = {
            p
            for p in lib.folder.open_catalog_for_writing()
            .paths_for(lib.folder.open_catalog_for_writing().ok_ids())
            .values()
            if lib.folder.open_catalog_for_writing().image_by_path(p).status == OK
        }
        lost = before_ok - now_ok
        if lost:
            example = sorted(lost)[0]
            row = lib.folder.open_catalog_for_writing().image_by_path(example)
            state = row.status if row else "no catalog row"
            if os.environ.get("CHAOS_VERBOSE") and row:
                st = os.stat(example)
                state += f" catalog {row.size}/{row.mtime_ns} file {st.st_size}/{st.st_mtime_ns}"
                mx = (
                    lib.folder.open_catalog_for_writing()
                    .db.execute("select max(id), min(id) from images")
                    .fetchone()
                )
                upd = (
                    lib.folder.open_catalog_for_writing()
                    .db.execute("select updated from images where id = ?", [row.id])
                    .fetchone()[0]
                )
                state += f" id {row.id} max/min {mx} updated {time.time() - upd:.1f}s ago"
            problems.append(f"{len(lost)} indexed images lost, e.g. {example} ({state})")
    return problems


def ok_paths(library: Path, up_to_date: bool = False) -> set[str]:
    """Paths indexed ok; with ``up_to_date``, only those whose file is unchanged since."""
    with Library(library) as lib:
        if not lib.exists:
            return set()
        paths = set(
            lib.folder.open_catalog_for_writing()
            .paths_for(lib.folder.open_catalog_for_writing().ok_ids())
            .values()
        )
        if not up_to_date:
            return paths
        fresh = set()
        for p in paths:
            row = lib.folder.open_catalog_for_writing().image_by_path(p)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if row and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns):
                fresh.add(p)
        return fresh


def searchable_paths(library: Path) -> set[str]:
    """Paths that answers can return: images ok or pending that hold a vector."""
    with Library(library) as lib:
        if not lib.exists or not lib.folder.recorded_backbone():
            return set()
        held = lib.folder.open_vectors().ids()
        return set(lib.folder.open_catalog().paths_for(held.tolist(), searchable=True).values())


def mutate(tree: Path, rng: random.Random, spare: list[Path], n_touch: int) -> None:
    """Change ``n_touch`` photos (half in content, so they are embedded again; half their mtime
    only, which must not be), delete one, move one, add one."""
    files = sorted(p for p in tree.rglob("*.jpg"))
    touched: set[str] = set()
    for k, p in enumerate(rng.sample(files, min(n_touch, len(files)))):
        if k % 2:
            with open(p, "ab") as f:  # bytes after the JPEG's end: new content, same picture
                f.write(rng.randbytes(rng.randrange(1, 64)))
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


def damage(path: Path, truncate: bool, rng: random.Random) -> None:
    """``path`` cut to between a quarter and a half of its size, or a run of garbage bytes
    written over it."""
    size = path.stat().st_size
    if truncate:
        os.truncate(path, rng.randrange(size // 4, size // 2 + 1) if size else 0)
    elif size:
        with open(path, "r+b") as f:
            start = rng.randrange(size)
            f.seek(start)
            f.write(rng.randbytes(min(size - start, rng.randrange(64, 8192))))


def corrupt(library: Path, mode: str, rng: random.Random, cmd_env: dict) -> None:
    """Damage the library as a bad disk or a hand edit would (``mode`` from CORRUPTIONS)."""
    vectors = library / "vectors"
    if mode == "catalog-page":
        catalog = library / "catalog.db"
        pages = max(1, catalog.stat().st_size // 4096)
        with open(catalog, "r+b") as f:
            f.seek(rng.randrange(pages) * 4096)
            f.write(rng.randbytes(4096))
    elif mode.startswith("meta-"):
        key, value = {
            "meta-schema": ("schema_version", '"abc"'),
            "meta-backbone": ("backbone", '{"x":1}'),
            "meta-dirty": ("dirty", "not json"),
        }[mode]
        with sqlite3.connect(library / "catalog.db") as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", [value, key])
        conn.close()
    elif mode.startswith(("vectors-", "ids-")):
        prefix = "vectors" if mode.startswith("vectors") else "ids"
        for path in vectors.glob(f"{prefix}-*.*"):
            damage(path, mode.endswith("truncated"), rng)
    elif mode.startswith("graph-") and graphs.path(library).exists():
        damage(graphs.path(library), mode.endswith("truncated"), rng)
    elif mode == "index-deleted":
        for path in vectors.glob("index*"):
            path.unlink()
    elif mode == "kill-compaction":  # compaction forced on the current store, killed around it
        code = (
            "import sys; from finder.library import Library\n"
            f"lib = Library({str(library)!r}); store = lib.folder.open_vectors_and_repair()\n"
            "store.compact_min, store.compact_fraction = 1, 0.0\n"
            "store.save_index(); lib.close()\n"
        )
        killed_after([sys.executable, "-c", code], cmd_env, rng.uniform(0.5, 4.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50)
    data_flags(ap)
    ap.add_argument("--max-delay", type=float, default=16.0, help="seconds before a kill, at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--touch", type=int, default=80, help="photos changed before each run")
    ap.add_argument("--corrupt", type=float, default=0.3, help="rounds followed by damage")
    ap.add_argument("--limit", type=int, default=0, help="photos copied (0: all)")
    args = ap.parse_args()
    if not args.photos.is_dir() or not args.model.is_file():
        sys.exit(f"chaos_index: needs {args.photos} and {args.model}")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="finder-chaos-"))
    tree, library = work / "tree", work / "library"
    shutil.copytree(args.photos, tree)
    if args.limit:
        for extra in sorted(tree.rglob("*.jpg"))[args.limit :]:
            extra.unlink()
    (tree / "added").mkdir()
    spare = sorted(args.photos.rglob("*.jpg"))
    rng.shuffle(spare)
    cmd = [sys.executable, "-m", "finder", "index", str(tree), "--library", str(library)]
    cmd += ["--model", str(args.model), "--quiet"]
    env = finder_env()
    inconsistencies = 0
    completed_runs = 0
    corruptions = traced = lost = 0
    modes: dict[str, int] = {}
    order = rng.sample(CORRUPTIONS, len(CORRUPTIONS))  # every mode in turn, in a random order
    try:
        for k in range(1, args.kills + 1):
            mutate(tree, rng, spare, args.touch)
            before = ok_paths(library, up_to_date=True)  # indexed, and unchanged since
            delay = rng.uniform(0.2, args.max_delay)
            killed, finished = killed_after(cmd, env, delay)
            completed_runs += finished  # it finished before the kill: nothing to kill this time
            traced += tracebacks(killed)
            mode = order[corruptions % len(order)] if rng.random() < args.corrupt else None
            if not (library / "vectors" / "manifest.json").exists():
                mode = None  # no library yet to damage
            if mode is not None:
                corruptions += 1
                modes[mode] = modes.get(mode, 0) + 1
                corrupt(library, mode, rng, env)
                probe = str(rng.choice(sorted(before))) if before else str(tree)
                met = [finder(["status", "--library", str(library)], env)]
                met.append(finder(["similar", probe, "--library", str(library)], env))
                repaired = finder(["repair", "--library", str(library)], env)
                indexed = finder(cmd[3:], env)
                traced += tracebacks(*met, repaired, indexed)
                if repaired.returncode or indexed.returncode:
                    inconsistencies += 1
                    print(f"    repair exit {repaired.returncode}, index exit {indexed.returncode}")
                missing = before - searchable_paths(library)
                lost += len(missing)
                if missing:
                    print(f"    {len(missing)} lost, e.g. {sorted(missing)[0]}")
            problems = check(library, before if mode is None else set())
            status = "ok" if not problems else "; ".join(problems)
            inconsistencies += bool(problems)
            what = f", then {mode}, repair, index" if mode else ""
            print(
                f"kill {k:3d} after {delay:5.2f}s{what}: {len(ok_paths(library))} indexed, {status}"
            )
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
        if modes:
            print("corruptions: " + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.kills} kills, {corruptions} corruptions, {traced} tracebacks, "
        f"{inconsistencies} inconsistencies, {lost} photos lost"
    )


if __name__ == "__main__":
    started = time.monotonic()
    main()
