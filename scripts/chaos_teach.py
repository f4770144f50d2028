"""Teach a library while kills land and its files are damaged; check that nothing acknowledged
is ever lost.

    python scripts/chaos_teach.py --kills 30 --corrupt 0.5 --seed 1

One index run of real photos (../shared/photos by default, read in place) with the shared TFLite
model makes a temporary library. Then each round teaches it a few times (in subprocesses, as a
person would: `finder learn NAME EXAMPLE...` for a new class, strips of marks with `finder learn
NAME --add ... --not ...`, the page's clicks and undos through `Library.learn_ids`, now and then
`finder forget`) and once more with a SIGKILL landing at a random moment of the command. A
command that returned 0 is acknowledged: a model of the classes and their examples and marks
takes its change. A killed command may have happened or not (both are allowed, nothing else);
the model keeps both until the next acknowledged change settles which.

With ``--corrupt P`` a round is, with probability P, followed by damage that no kill can cause
(``CORRUPTIONS``, each in turn: the catalog truncated, a garbage page, the catalog deleted with
its -wal/-shm, and with its backups too; the teaching journal truncated, garbage in it, deleted;
the vector files truncated, garbage in them, one deleted, one vector changed in place; everything
but the journal and the vectors). Then `finder check` must exit 3 (else the damage counts as
undetected), commands meet the damage (one line each, never a traceback), `finder repair` and one
`finder index` run, `finder check` must exit 0, every photo indexed before must be indexed again,
and the classes, examples and marks must equal the model (each example or mark missing counts as
a teaching lost). Last line:

    30 kills, 15 corruptions, 0 tracebacks, 0 inconsistencies, 0 photos lost, 0 teachings lost
"""

from __future__ import annotations

import argparse
import json
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
from finder.store.journal import JOURNAL  # noqa: E402
from scripts.chaos_run import data_flags, finder, finder_env, killed_after, tracebacks  # noqa: E402

CORRUPTIONS = (
    "catalog-truncated",
    "catalog-garbage",
    "catalog-deleted",
    "catalog-and-backups-deleted",
    "journal-truncated",
    "journal-garbage",
    "journal-deleted",
    "vectors-truncated",
    "vectors-garbage",
    "vectors-file-deleted",
    "vector-changed",
    "all-but-journal-and-vectors",
)
CLASSES = ("alpha", "beta", "gamma", "delta")

Teaching = dict[str, frozenset[tuple[str, int]]]


# ------------------------------------------------------------------------------ the model
def observe(library: Path) -> tuple[Teaching, dict[str, float]]:
    """The classes with their examples and marks, and their cut-offs, as the library says."""
    with Library(library) as lib:
        teaching: Teaching = {}
        cuts = {}
        for record in lib.classes():
            name = record["name"]
            teaching[name] = frozenset(lib.examples(name))
            cuts[name] = float(record["threshold"])
    return teaching, cuts


def apply_op(model: Teaching, op: dict) -> Teaching:
    """The model after an acknowledged ``op``."""
    out = dict(model)
    name = op["class"]
    if op["kind"] == "forget":
        out.pop(name, None)
        return out
    marks = {p: label for p, label in out.get(name, frozenset())}
    for p in op.get("undo", []):
        marks.pop(p, None)
    for p in op.get("add", []):
        marks[p] = 1
    for p in op.get("not", []):
        marks[p] = 0
    out[name] = frozenset(marks.items())
    return out


def lost_between(model: Teaching, seen: Teaching) -> int:
    """Examples and marks of ``model`` that ``seen`` lacks (a class lacking: all of them)."""
    return sum(len(marks - seen.get(name, frozenset())) for name, marks in model.items())


# ------------------------------------------------------------------------------ teaching
def pick_op(rng: random.Random, candidates: list[Teaching], photos: dict[str, list[str]]) -> dict:
    """A teaching change valid on every candidate state (so an acknowledged run never fails):
    while a killed change is unsettled, only new classes and strips with a ✓."""
    groups = sorted(photos)
    model = candidates[0]
    sure = len(candidates) == 1
    common = sorted(set.intersection(*(set(c) for c in candidates)))
    free = [c for c in CLASSES if all(c not in m for m in candidates)]
    roll = rng.random()
    if free and (not common or roll < 0.2):
        group = rng.choice(groups)
        return {
            "kind": "new",
            "class": rng.choice(free),
            "add": rng.sample(photos[group], rng.randint(2, 4)),
            "group": group,
        }
    if not common:  # every name taken, none in all candidates: a strip on a new name's class
        name = rng.choice(sorted(model))
        return {"kind": "marks-cli", "class": name, "add": rng.sample(photos[groups[0]], 2)}
    name = rng.choice(common)
    marks = dict(model[name])
    if sure and roll < 0.28 and len(model) > 1:
        return {"kind": "forget", "class": name}
    every = [p for g in groups for p in photos[g]]
    if sure and roll < 0.5:  # undo some marks, keeping one example at least
        positives = [p for p, label in marks.items() if label == 1]
        undoable = [p for p in marks if marks[p] == 0 or len(positives) > 1]
        if undoable:
            undo = rng.sample(undoable, min(len(undoable), rng.randint(1, 3)))
            if sum(1 for p in positives if p not in undo) >= 1:
                api = rng.random() < 0.7
                return {"kind": "undo-api" if api else "undo-ids", "class": name, "undo": undo}
    strip = rng.sample(every, rng.randint(2, 8))  # a strip of marks: ✓ or ✗ each
    add = [p for p in strip if rng.random() < 0.4] or ([] if sure else strip[:1])
    not_ = [p for p in strip if p not in add]
    kind = "marks-cli" if rng.random() < 0.5 else "marks-api"
    return {"kind": kind, "class": name, "add": add, "not": not_}


def op_argv(op: dict, library: Path, ids: dict[str, int]) -> list[str]:
    lib = ["--library", str(library)]
    if op["kind"] == "new":
        return [sys.executable, "-m", "finder", "learn", op["class"], *op["add"], *lib]
    if op["kind"] == "forget":
        return [sys.executable, "-m", "finder", "forget", op["class"], *lib]
    if op["kind"] == "marks-cli":
        flags = [x for p in op["add"] for x in ("--add", p)]
        flags += [x for p in op["not"] for x in ("--not", p)]
        return [sys.executable, "-m", "finder", "learn", op["class"], *flags, *lib]
    add = [ids[p] for p in op.get("add", [])]
    not_ = [ids[p] for p in op.get("not", [])]
    undo = [ids[p] for p in op.get("undo", [])]
    code = (
        "import sys\nfrom finder.library import Library\n"
        f"with Library({str(library)!r}) as lib:\n"
        f"    lib.learn_ids({op['class']!r}, add={add}, not_={not_}, undo={undo})\n"
    )
    return [sys.executable, "-c", code]


# ------------------------------------------------------------------------------ damage
def corrupt(library: Path, mode: str, rng: random.Random) -> None:
    """Damage the library as a bad disk or a careless hand would (``mode`` from CORRUPTIONS)."""
    catalog = library / "catalog.db"
    if mode.startswith("catalog-") and catalog.exists():
        with sqlite3.connect(catalog) as conn:  # what a crash-free shutdown leaves on disk
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    journal = library / JOURNAL
    vectors = library / "vectors"
    if mode == "catalog-truncated":
        os.truncate(catalog, int(catalog.stat().st_size * rng.uniform(0.3, 0.9)))
    elif mode == "catalog-garbage":
        pages = max(1, catalog.stat().st_size // 4096)
        with open(catalog, "r+b") as f:
            f.seek(rng.randrange(1, max(2, pages)) * 4096)
            f.write(rng.randbytes(4096))
    elif mode in ("catalog-deleted", "catalog-and-backups-deleted", "all-but-journal-and-vectors"):
        for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
            (library / name).unlink(missing_ok=True)
        if mode != "catalog-deleted":
            shutil.rmtree(library / "backups", ignore_errors=True)
        if mode == "all-but-journal-and-vectors":
            (library / "images.npz").unlink(missing_ok=True)
    elif mode == "journal-truncated":
        os.truncate(journal, int(journal.stat().st_size * rng.uniform(0.2, 0.95)))
    elif mode == "journal-garbage":
        size = journal.stat().st_size
        with open(journal, "r+b") as f:
            f.seek(rng.randrange(size // 2, size))  # in the changes, not only the header
            f.write(rng.randbytes(rng.randrange(16, 512)))
    elif mode == "journal-deleted":
        journal.unlink()
    elif mode in ("vectors-truncated", "vectors-garbage"):
        for path in vectors.glob("vectors-*.f16"):
            size = path.stat().st_size
            if mode == "vectors-truncated":
                os.truncate(path, rng.randrange(size // 4, size))
            else:
                with open(path, "r+b") as f:
                    f.seek(rng.randrange(size))
                    f.write(rng.randbytes(rng.randrange(64, 8192)))
    elif mode == "vectors-file-deleted":
        kinds = ["vectors-*.f16", "ids-*.i64", "sums-*.i64", "manifest.json"]
        for path in vectors.glob(rng.choice(kinds)):
            path.unlink()
    elif mode == "vector-changed":
        manifest = json.loads((vectors / "manifest.json").read_text())
        g, dim = manifest["generation"], manifest["dim"]
        raw = np.memmap(vectors / f"vectors-{g}.f16", dtype=np.float16, mode="r+")
        raw = raw.reshape(-1, dim)
        with Library(library) as lib:  # a live row: a stored vector that answers use
            row = int(rng.choice(lib.folder.open_vectors().raw.live_rows().tolist()))
        x = np.roll(raw[row].astype(np.float32), rng.randrange(1, dim))
        raw[row] = (x / np.linalg.norm(x)).astype(np.float16)  # finite, unit length
        raw.flush()
        del raw


def ok_paths(library: Path) -> set[str]:
    with Library(library) as lib:
        cat = lib.folder.open_catalog()
        return set(cat.paths_for(cat.ok_ids()).values())


# ------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--corrupt", type=float, default=0.5, help="chance a round damages a file")
    ap.add_argument("--seed", type=int, default=0)
    data_flags(ap)
    ap.add_argument("--ops", type=int, default=2, help="acknowledged changes per round, at most")
    args = ap.parse_args()
    if not args.photos.is_dir() or not args.model.is_file():
        sys.exit(f"chaos_teach: needs {args.photos} and {args.model}")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="finder-chaos-teach-"))
    library = work / "library"
    env = finder_env()
    index_args = ["index", str(args.photos), "--library", str(library), "--quiet"]
    kills = corruptions = traced = inconsistencies = photos_lost = teachings_lost = 0
    undetected = finished = 0
    modes: dict[str, int] = {}
    durations: list[float] = [3.0]
    try:
        first = finder([*index_args, "--model", str(args.model)], env)
        if first.returncode:
            sys.exit(f"chaos_teach: the first index failed: {first.stderr.decode()[-500:]}")
        with Library(library) as lib:
            cat = lib.folder.open_catalog()
            path_ids = {p: i for i, p in cat.paths_for(cat.ok_ids()).items()}
        photos: dict[str, list[str]] = {}
        for path in sorted(path_ids):
            photos.setdefault(Path(path).parent.name, []).append(path)
        candidates: list[Teaching] = [{}]
        uncertain = False  # a killed change is not settled yet (its head may or may not be)
        order = rng.sample(CORRUPTIONS, len(CORRUPTIONS))
        for k in range(1, args.kills + 1):
            done = []
            for _ in range(rng.randint(0, args.ops)):  # acknowledged changes
                op = pick_op(rng, candidates, photos)
                began = time.monotonic()
                run = subprocess.run(
                    op_argv(op, library, path_ids), env=env, capture_output=True, timeout=600
                )
                traced += tracebacks(run)
                if run.returncode == 0:
                    durations.append(time.monotonic() - began)
                    candidates = [apply_op(c, op) for c in candidates]
                    seen, _ = observe(library)
                    if seen not in candidates:
                        inconsistencies += 1
                        print(f"    after {op['kind']} {op['class']}: not the model")
                        candidates = [seen]
                    candidates = [seen]  # settled: the changes since the last kill are known
                    uncertain = False
                    done.append(op["kind"])
                else:
                    print(f"    {op['kind']} failed: {run.stderr.decode()[-300:]}")
            op = pick_op(rng, candidates, photos)  # this one is killed at a random moment
            median = float(np.median(durations[-20:]))
            delay = rng.uniform(0.3 * median, 1.1 * median)
            killed, _ = killed_after(op_argv(op, library, path_ids), env, delay)
            kills += 1
            traced += tracebacks(killed)
            unsettled = killed.returncode != 0
            finished += not unsettled
            uncertain |= unsettled
            if not unsettled:  # it finished first: acknowledged
                candidates = [apply_op(c, op) for c in candidates]
            else:  # happened or not
                candidates = candidates + [apply_op(c, op) for c in candidates]
            candidates = list({frozenset(c.items()): c for c in candidates}.values())
            seen, cuts = observe(library)
            if seen not in candidates:
                inconsistencies += 1
                print(f"    after the kill of {op['kind']} {op['class']}: not the model")
                candidates = [seen]
            fate = "killed" if unsettled else "done before its kill"
            what = f"{', '.join(done) or 'nothing'}, then {op['kind']} {fate} after {delay:.2f}s"
            mode = order[corruptions % len(order)] if rng.random() < args.corrupt else None
            if mode is None:
                print(f"round {k:3d}: {what}: {len(seen)} classes, ok")
                sys.stdout.flush()
                continue
            corruptions += 1
            modes[mode] = modes.get(mode, 0) + 1
            before_ok = ok_paths(library)
            corrupt(library, mode, rng)
            check = finder(["check", "--library", str(library)], env)
            if check.returncode != 3:
                undetected += 1
            met = [
                finder(["status", "--library", str(library)], env),
                finder(["classes", "--library", str(library)], env),
            ]
            repaired = finder(["repair", "--library", str(library), "--json"], env)
            indexed = finder(index_args, env)
            after = finder(["check", "--library", str(library)], env)
            traced += tracebacks(check, *met, repaired, indexed, after)
            problems = []
            if repaired.returncode or indexed.returncode or after.returncode:
                problems.append(
                    f"repair exit {repaired.returncode}, index exit {indexed.returncode}, "
                    f"check exit {after.returncode}: {after.stdout.decode()[-300:]}"
                    f"{repaired.stderr.decode()[-300:]}{indexed.stderr.decode()[-300:]}"
                )
            missing = before_ok - ok_paths(library)
            photos_lost += len(missing)
            if missing:
                problems.append(f"{len(missing)} photos lost, e.g. {sorted(missing)[0]}")
            now, now_cuts = observe(library)
            if now not in candidates:
                lost = min(lost_between(c, now) for c in candidates)
                teachings_lost += lost
                problems.append(f"teaching differs from the model ({lost} examples/marks lost)")
            elif not uncertain and now_cuts != cuts:  # the heads came back as they were
                problems.append(f"cut-offs changed: {cuts} -> {now_cuts}")
            candidates = [now]  # the repair settled it: catalog and journal agree
            uncertain = False
            inconsistencies += bool(problems)
            status = "; ".join(problems) or "ok"
            shown = "" if check.returncode == 3 else " (check found nothing)"
            print(
                f"round {k:3d}: {what}; {mode}{shown}, repair, index: {len(now)} classes, {status}"
            )
            sys.stdout.flush()
        print("corruptions: " + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())))
        if finished:
            print(f"({finished} commands finished before their kill was due)")
        if undetected:
            print(f"({undetected} damages were not found by `finder check` before the repair)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{kills} kills, {corruptions} corruptions, {traced} tracebacks, "
        f"{inconsistencies} inconsistencies, {photos_lost} photos lost, "
        f"{teachings_lost} teachings lost"
    )


if __name__ == "__main__":
    main()
