"""What a person or a script meets of finder, recorded for two checkouts in one run and compared:
every command's ``--help``, the JSON (and some text) every command prints on a small library of
generated photos, the one-line errors of bad input with their exit codes, and the web API's
answers (``finder serve``). A reshaping of the code shows here that it changed none of it.

    python scripts/surface.py                      # this checkout against the branch main
    python scripts/surface.py --against 2e310e5    # ... against any commit
    python scripts/surface.py --record out.json    # only record this checkout (or --against's) ...
    python scripts/surface.py --baseline out.json  # ... and compare with such a record later
    python scripts/surface.py --baseline out.json --against HEAD  # (a commit, while you edit)

The other checkout is made with ``git worktree add --detach`` in a temporary folder (removed at
the end). Both run ``python -m finder`` from their own root, on the same photos (made by
``tests/conftest.py``'s ``make_photo``, dates fixed) with the same backbone (the shared TFLite
model, else the tests' tiny Keras model), each in a library of its own. What differs between
two runs of the same code is left out: the library's folder (shown as ``$LIBRARY``), the
photos' (``$WORK``), times (``seconds``, ``updated``, an index run's speed), the server's port
and token. The last line reads ``N cases, D differ``; the exit code is 1 when any differ.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import TFLITE_MODEL, make_photo  # noqa: E402

DAY = 86400
START = 1_500_000_000  # the photos' modification times: fixed, so dates taken are the same

# Noise a backbone's runtime may print on stderr, not finder's own words.
TIMING = re.compile(r"in [0-9.]+s, [0-9.]+ images/s")
TIMES = {"seconds", "updated", "started", "pid"}  # JSON fields of times, durations, processes
NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before|\S+\.cc:\d+\])"
)


# -- the photos and the backbone, shared by both checkouts -------------------------------------
def make_photos(root: Path) -> None:
    """photos/{red,blue,green}/N.jpg, a PNG, a byte-identical copy (for dupes), and a photo
    outside the indexed tree (for similar); modification times fixed."""
    n = 0
    for k, kind in enumerate(("red", "blue", "green")):
        for i in range(4):
            make_photo(root / "photos" / kind / f"{i}.jpg", kind, seed=10 * k + i)
    make_photo(root / "photos" / "green" / "extra.png", "green", seed=99)
    shutil.copyfile(root / "photos" / "red" / "0.jpg", root / "photos" / "red" / "copy.jpg")
    make_photo(root / "elsewhere" / "q.jpg", "red", seed=77)
    for path in sorted(root.rglob("*.*")):
        os.utime(path, (START + n * DAY, START + n * DAY))
        n += 1


def backbone_args(root: Path) -> list[str]:
    """The shared TFLite model, else a tiny seeded Keras model made here."""
    if TFLITE_MODEL.exists():
        return ["--model", str(TFLITE_MODEL)]
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    path = root / "tiny.keras"
    keras.Model(inputs, keras.layers.Dense(4)(x)).save(path)
    return ["--model", str(path), "--layer", "pool"]


# -- one checkout ------------------------------------------------------------------------------
class Recorder:
    def __init__(self, code: Path, work: Path, library: Path, model: list[str]) -> None:
        self.code, self.work, self.library, self.model = code, work, library, model
        self.cases: dict[str, Any] = {}
        env = {k: v for k, v in os.environ.items() if k not in ("FINDER_LIBRARY", "PYTHONPATH")}
        self.env = {**env, "COLUMNS": "80", "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}

    def norm(self, data: Any) -> Any:
        """``data`` without what differs between two runs of the same code: the library's
        folder, times."""
        if isinstance(data, str):
            data = data.replace(str(self.library), "$LIBRARY").replace(str(self.work), "$WORK")
            return TIMING.sub("in Ts, R images/s", data)
        if isinstance(data, list):
            return [self.norm(d) for d in data]
        if isinstance(data, dict):
            return {k: "$TIME" if k in TIMES else self.norm(v) for k, v in data.items()}
        return data

    def finder(self, *args: str) -> tuple[str, str, int]:
        p = subprocess.run(
            [sys.executable, "-m", "finder", *args],
            cwd=self.code,
            env=self.env,
            capture_output=True,
            timeout=900,
        )
        out = p.stdout.decode("utf-8", "surrogateescape")
        err = "\n".join(
            line
            for line in p.stderr.decode("utf-8", "surrogateescape").splitlines()
            if not NOISE.match(line)
        )
        return self.norm(out), self.norm(err), p.returncode

    def help(self, *command: str) -> None:
        out, err, code = self.finder(*command, "--help")
        self.cases[" ".join(("help", *command))] = {"out": out, "err": err, "code": code}

    def run(self, key: str, *args: str, library: bool = True, as_json: bool = True) -> Any:
        full = [*args, *(["--library", str(self.library)] if library else [])]
        out, err, code = self.finder(*full, *(["--json"] if as_json else []))
        data: Any = out
        if as_json and code == 0:
            data = self.norm(json.loads(out))
        self.cases[key] = {"out": data, "err": err, "code": code}
        return data

    def commands(self) -> list[str]:
        out, _, _ = self.finder("--help")
        listed = out.split("Commands:", 1)[1].splitlines()
        return [line.split()[0] for line in listed if line.startswith("  ") and line.strip()]

    def record(self) -> dict[str, Any]:
        self.help()
        for name in self.commands():
            self.help(name)
        self.cli()
        self.api()
        return self.cases

    def cli(self) -> None:
        w = self.work
        photos, red, blue = w / "photos", w / "photos" / "red", w / "photos" / "blue"
        run = self.run
        run("status, no library", "status")
        run("find, no library", "find", "red")
        run("index", "index", str(photos), *self.model)
        run("index again", "index", str(photos))
        run("index text", "index", str(photos), "--quiet", as_json=False)
        run("status", "status")
        run("status text", "status", as_json=False)
        run("status --failed", "status", "--failed")
        run("backbones", "backbones", library=False)
        run("backbones text", "backbones", library=False, as_json=False)
        run("learn red", "learn", "red", str(red / "0.jpg"), str(red / "1.jpg"))
        run(
            "learn red --add --not",
            "learn",
            "red",
            "--add",
            str(red / "2.jpg"),
            "--not",
            str(blue / "0.jpg"),
        )
        run("learn blue text", "learn", "blue", str(blue / "1.jpg"), as_json=False)
        run("learn blue folder", "learn", "blue", str(blue))
        run("classes", "classes")
        run("classes text", "classes", as_json=False)
        run("classes --examples", "classes", "--examples", "red")
        run("classes --examples text", "classes", "--examples", "red", as_json=False)
        run("find", "find", "red")
        run("find text", "find", "red", as_json=False)
        run("find --top", "find", "red", "--top", "5")
        run("find --min-prob", "find", "red", "--min-prob", "0.2")
        run("find --review", "find", "red", "--review", "3")
        run("find --sort date", "find", "red", "--top", "6", "--sort", "date")
        run("find --sort date text", "find", "red", "--top", "6", "--sort", "date", as_json=False)
        run("find --under", "find", "red", "--top", "20", "--under", str(red))
        run(
            "find --after --before",
            "find",
            "red",
            "--top",
            "20",
            "--after",
            "2017-07",
            "--before",
            "2017-07-10",
        )
        run("find --camera", "find", "red", "--top", "20", "--camera", "canon")
        run("find --print0", "find", "red", "--top", "3", "--print0", as_json=False)
        run("find --copy", "find", "red", "--top", "2", "--copy", str(self.library / "out"))
        run("similar", "similar", str(red / "3.jpg"), "--top", "4")
        run("similar outside", "similar", str(w / "elsewhere" / "q.jpg"), "--top", "3")
        run("similar --under", "similar", str(red / "3.jpg"), "--under", str(blue))
        run("similar text", "similar", str(red / "3.jpg"), "--top", "2", as_json=False)
        run("tag --dry-run", "tag", "red", "--dry-run", "--top", "3")
        run("dupes", "dupes")
        run("dupes --under", "dupes", "--under", str(blue))
        run("dupes text", "dupes", as_json=False)
        run("check", "check")
        run("check text", "check", as_json=False)
        self.errors()
        run("forget", "forget", "blue", as_json=False)
        run("classes after forget", "classes")
        run("repair", "repair")
        run("status after repair", "status")
        evals = self.library.parent / (self.library.name + "-eval")
        run(
            "eval",
            "eval",
            str(photos),
            *self.model,
            "--k",
            "1,2",
            "--trials",
            "2",
            "--library",
            str(evals),
            library=False,
        )
        run(
            "eval --feedback",
            "eval",
            str(photos),
            "--k",
            "1",
            "--trials",
            "1",
            "--feedback",
            "1",
            "--clicks",
            "2",
            "--shown",
            "review",
            "--library",
            str(evals),
            library=False,
        )

    def errors(self) -> None:
        """Bad input: one line on stderr and an exit code."""
        w = self.work
        photos, red = w / "photos", w / "photos" / "red"
        bad: list[tuple[str, ...]] = [
            ("find", "red", "--top", "0"),
            ("find", "red", "--min-prob", "2"),
            ("find", "nope"),
            ("find", "red", "--sort", "size"),
            ("find", "red", "--print0", "--json"),
            ("find", "red", "--copy", "a", "--link", "b"),
            ("find", "red", "--review", "2", "--after", "2017"),
            ("find", "red", "--after", "yesterday"),
            ("find", "red", "--near", "91,0"),
            ("find", "red", "--within", "5"),
            ("similar", str(w / "missing.jpg")),
            ("similar", str(photos)),
            ("similar", str(red / "0.jpg"), "--top", "0"),
            ("similar", str(red / "0.jpg"), "--sort", "size"),
            ("learn", "new"),
            ("learn", "x", str(red / "0.jpg"), "--not", str(red / "0.jpg")),
            ("learn", "x", str(w / "missing.jpg")),
            ("learn", "", str(red / "0.jpg")),
            ("forget", "nope"),
            ("classes", "--examples", "nope"),
            ("index", str(w / "missing")),
            ("index", str(photos), "--memory-budget", "lots"),
            ("index", str(photos), "--memory-budget", "0"),
            ("index", str(photos), "--views", "3"),
            ("index", str(photos), "--precision", "float8"),
            ("index", str(photos), "--backbone", "resnet50"),
            ("index", str(photos), "--ray", "no address"),
            ("index", str(photos), "--ray"),
            ("index", str(photos), "--ray", "auto"),
            ("index", "--ray", str(photos)),
            ("index", str(photos), "--ray", "10.0.0.5:6379"),
            ("index", "--batch-size", "0", str(photos)),
            ("dupes", "--under", str(w / "missing")),
            ("tag", "nope", "--dry-run"),
            ("eval", str(photos), "--k", "x"),
            ("eval", str(photos), "--feedback", "1", "--k", "1,2"),
            ("serve", "--port", "70000"),
            ("find",),
            ("find", "red", "--bogus"),
        ]
        for args in bad:
            self.run(
                "error: " + " ".join(a.replace(str(w), "$WORK") for a in args), *args, as_json=False
            )

    # -- the web API ---------------------------------------------------------------------------
    def api(self) -> None:
        import httpx

        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "finder",
                "serve",
                "--library",
                str(self.library),
                "--port",
                "0",
                "--no-open",
            ],
            cwd=self.code,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().decode().strip()
            base, token = url.split("/?token=")
            client = httpx.Client(base_url=base, timeout=120)
            client.get("/", params={"token": token})  # the token once, then its cookie
            red = [m["id"] for m in client.get("/api/find/red", params={"top": 20}).json()]
            gets = [
                "/api/status",
                "/api/classes",
                "/api/progress",
                "/api/find/red",
                "/api/find/red?top=3",
                "/api/find/red?min_prob=0.2",
                f"/api/similar/{red[0]}?top=3",
                "/api/examples/red",
                "/api/review/red?n=3",
                "/api/find/nope",
                "/api/find/red?top=0",
                "/api/find/red?top=x",
                "/api/find/red?min_prob=2",
                "/api/find/red?min_prob=x",
                "/api/similar/987654",
                f"/api/similar/{red[0]}?top=0",
                "/api/similar/x",
                "/api/review/red?n=0",
                "/api/examples/nope",
            ]
            for target in gets:
                r = client.get(target)
                self.cases[f"api GET {target}"] = {
                    "out": self.norm(_body(r)),
                    "code": r.status_code,
                }
            posts = [
                ("/api/learn/red", {"add": [red[-1]]}),
                ("/api/learn/red", {"undo": [red[-1]]}),
                ("/api/learn/red", {"add": [red[-2]], "not": [red[-2]]}),
                ("/api/learn/red", {"add": ["/etc/x"]}),
                ("/api/learn/red", {"add": [987654]}),
                ("/api/learn/red", {"undo": [red[-3]]}),
                ("/api/learn/red", {"what": [1]}),
                ("/api/learn/red", {}),
                ("/api/learn/new class", {"add": [red[1]]}),
                ("/api/learn/", {"add": [red[1]]}),
            ]
            for target, body in posts:
                r = client.post(target, json=body, headers={"origin": base})
                key = f"api POST {target} {json.dumps(body)}"
                self.cases[key] = {"out": self.norm(_body(r)), "code": r.status_code}
        finally:
            server.terminate()
            server.wait(60)


def _body(r: Any) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


# -- two checkouts -----------------------------------------------------------------------------
def record(code: Path, shared: Path, model: list[str], name: str) -> dict[str, Any]:
    library = shared / f"library-{name}"
    started = time.monotonic()
    cases = Recorder(code, shared, library, model).record()
    print(f"{name}: {len(cases)} cases in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return cases


def compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> int:
    differ = 0
    for key in list(dict.fromkeys([*a, *b])):
        if a.get(key) == b.get(key):
            continue
        differ += 1
        left = json.dumps(a.get(key), indent=1, ensure_ascii=False).splitlines()
        right = json.dumps(b.get(key), indent=1, ensure_ascii=False).splitlines()
        print(f"== {key}")
        for line in difflib.unified_diff(left, right, names[0], names[1], lineterm="", n=2):
            print(line)
    print(f"{len(set(a) | set(b))} cases, {differ} differ")
    return differ


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", help="commit to compare with (default: main)")
    ap.add_argument(
        "--record", type=Path, help="only record this checkout (or --against) into this file"
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="compare this record with this checkout (or with --against, then recorded)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="finder-surface-") as tmp:
        shared = Path(tmp)
        make_photos(shared)
        model = backbone_args(shared)
        other = shared / "other"
        if args.against:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(other), args.against],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
        try:
            if args.record:
                code, name = (other, args.against) if args.against else (REPO, "this")
                cases = record(code, shared, model, name)
                args.record.write_text(json.dumps(cases, indent=1, ensure_ascii=False))
                return 0
            if args.baseline:
                before = json.loads(args.baseline.read_text())
                code, name = (other, args.against) if args.against else (REPO, "this checkout")
                after = record(code, shared, model, name)
                return 1 if compare(before, after, (str(args.baseline), name)) else 0
            against = args.against or "main"
            if not args.against:
                subprocess.run(
                    ["git", "worktree", "add", "--detach", str(other), against],
                    cwd=REPO,
                    check=True,
                    capture_output=True,
                )
            before = record(other, shared, model, against)
            after = record(REPO, shared, model, "this")
            return 1 if compare(before, after, (against, "this checkout")) else 0
        finally:
            if other.exists():
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(other)], cwd=REPO, check=False
                )


if __name__ == "__main__":
    sys.exit(main())
