"""What filing already teaches (issue 25): a fraction of each class filed, the rest suggested.

The libraries: ../shared/tf_flowers (4,064 photos, 5 species) alone, and ../shared/photos (17
flowers17 species of 20, 100 cats, 100 dogs) together with it (4,604; a species in both sets is
one class: daisy, dandelion, sunflower, tulip). Each photo is hard-linked (a symbolic link where
the file system refuses) into a tree in a temporary folder, never into the repository, named by
a number (its name says nothing of its class), and placed by the case:

- ``25%`` / ``10%``: that fraction of each class (at least one photo) is filed, the rest sits in
  ``unsorted/``;
- ``two``: only two species are filed (25% of each: ``--two``), every other photo is unsorted.

Each case is filed two ways, one after the other in the same tree: **folders** (``TREE/daisy/``,
...) and **keywords** (every filed photo in ``TREE/filed/`` with an XMP sidecar, digiKam's
``photo.jpg.xmp`` with ``digiKam:TagsList`` ``Flowers/Daisy`` for every other photo, Lightroom's
``photo.xmp`` with ``lr:hierarchicalSubject`` ``Flowers|Daisy`` for the rest; cats and dogs under
``Pets``). The library is indexed once (the shared TFLite MobileNet, one view); every later
arrangement only moves files and writes sidecars, and ``finder index`` keeps each moved photo's
vector (nothing is embedded twice) and reads the sidecars. One library serves both: the
combined one is indexed first, then tf_flowers alone is what is left once the other photos are
deleted from the tree (its metric computed anew). The classes and their photos are
then read back through the catalog's own API: ``folder_counts`` and the folders' photos, or
``keyword_counts``, ``keyword_class_names`` and ``images_with_keyword``.

Each class's suggestions are its photos in ``unsorted/`` at or above its cut, scored against
the truth there: precision, recall, F1, and the ECE of its probabilities over every unsorted
photo (``finder.learn.feedback.calibration_error``); means over the classes. The variants:

- ``plain``: today's path, ``Library.learn(CLASS, its filed photos)`` (the issue measured
  tf_flowers F1 0.881 at 25%, 0.855 at 10%);
- ``siblings``: the photos filed under the other classes given as counter-examples, as
  ``learn --not`` gives them (weight ``EXPLICIT_NEGATIVE_WEIGHT``, 3): a photo in one folder is
  not in its siblings;
- ``weak W``: the same photos as counter-examples of weight W (``--weak``; 1 is a background
  photo's weight): what a thoroughly tagged photo without the keyword is worth as evidence
  against it (in these trees the tagged photos without a keyword are its siblings);
- ``one-folder``: the siblings' heads, each unsorted photo suggested for one class at most:
  among the classes whose cut it passes, the one whose head gives it the highest logit;
- ``joint``: the same, but the class is chosen by a multinomial logistic head over the filed
  classes, trained on the filed photos alone (in the library's metric, each class weighing the
  same whatever its number of filed photos: :func:`fit_softmax`): the one-vs-rest head
  says *whether* a photo is of a filed class (its cut), the joint head *which*; ``joint -1``
  with the cuts lowered by one logit; ``joint, no gate``: the joint head alone, every unsorted
  photo given to one filed class (right only when every photo is of one: not in case ``two``).
  The product's ``suggest`` chooses among siblings with a joint head too, beside the margins
  (``finder/siblings.py``, ``finder/learn/joint.py``).

The ECE of the last two is that of the siblings' heads (what the page would show). Everything
but ``plain`` is an experiment of this script, not the product: ``plain`` calls
``Library.learn``; the others call ``finder.learn.train.train_head`` with the inputs
``Library.learn`` gives it (background draw, metric, marks), the counter-examples' weight set
for the call. Training is deterministic: a head trained from the same ids is taken from a cache
rather than trained twice (folders and keywords that file the same photos give the same heads;
the script says how many it reused). The tables' rows are per library, case, filing and
variant; then each bar of issue 25 with today's path and the best variant; the last line is
JSON (per library, case, filing, variant: ``precision``, ``recall``, ``f1``, ``ece``, per class,
and for the one-vs-rest variants each class's size estimate against its truth in the
background sample).

The product's rows also carry the best-cut F1 of each class's ranking on ``unsorted/`` (the cut
chosen from the truth: an oracle), and a ``ceiling`` line per case names the classes whose
ranking allows least: what these vectors and heads allow with that many photos filed, whatever
the cut. ``--small F`` files the classes of fewer than 50 photos (flowers17's 20) at the
fraction F instead (the case named ``25%, small 50%``): the same ceiling with more of their
photos filed.

The trees are ``scripts/filed_tree.py``'s, the variants and their scoring
``scripts/filed_variants.py``'s; this script lays out each case, indexes, and reports.

    python scripts/bench_filed.py [--libraries both tf] [--cases 25% 10% two] [--keep DIR]
        [--variants plain siblings weak one-folder joint] [--weak 1 10] [--weak-on tf]
        [--small F]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.library import BackboneChoice, Library  # noqa: E402
from scripts.filed_tree import (  # noqa: E402
    LIBRARIES,
    MODEL,
    arrange,
    choose_filed,
    collect,
)
from scripts.filed_variants import Bench  # noqa: E402

CASES = {"25%": 0.25, "10%": 0.10, "two": 0.25}
VARIANTS = ("product", "plain", "siblings", "weak", "one-folder", "joint")
BARS = {  # issue 25: mean F1 by library and case
    ("tf", "25%"): 0.90,
    ("both", "25%"): 0.87,
    ("tf", "10%"): 0.88,
    ("both", "10%"): 0.85,
}
TWO_BARS = {"precision": 0.85, "recall": 0.80}


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def print_rows(library: str, case: str, how: str, got: dict) -> None:
    for variant, m in got.items():
        if variant == "filed":
            continue
        best = f"{m['best_f1']:.3f}" if "best_f1" in m else "–"
        print(
            f"| {library} | {case} | {how} | {variant} | {m['precision']:.3f} | "
            f"{m['recall']:.3f} | {m['f1']:.3f} | {m['ece']:.3f} | {best} |",
            flush=True,
        )


def ceilings(report: dict, worst: int = 4) -> list[dict]:
    """What the product's heads allow at an oracle cut (mean best-cut F1), per library, case
    and filing, against the answer's F1 and the bar, with the classes whose ranking allows least
    (each: its best-cut F1, and its answer's F1)."""
    out = []
    for library, cases in report.items():
        for case, filings in cases.items():
            for how, got in filings.items():
                m = got.get("product")
                if m is None or "best_f1" not in m:
                    continue
                per = m["classes"]
                low = sorted(per, key=lambda c: per[c]["best_f1"])[:worst]
                out.append(
                    {
                        "case": f"{library} {case} {how}",
                        "bar": BARS.get((library, case.split(",")[0])),
                        "f1": round(m["f1"], 4),
                        "best_f1": round(m["best_f1"], 4),
                        "worst": {c: [per[c]["best_f1"], per[c]["f1"]] for c in low},
                    }
                )
    return out


def bars(report: dict, two: Sequence[str]) -> list[dict]:
    """Each bar of issue 25 against today's path (plain) and the best variant."""
    out = []
    for library, cases in report.items():
        for case, filings in cases.items():
            for how, got in filings.items():
                variants = {v: m for v, m in got.items() if v != "filed"}
                # what ships (product); else the best that could: not the joint head without its
                # gate (it assumes every unsorted photo is of a filed class, as it is in these
                # trees but not in a library)
                best = (
                    "product"
                    if "product" in variants
                    else max(
                        (v for v in variants if "no gate" not in v),
                        key=lambda v: variants[v]["f1"],
                    )
                )
                base = case.split(",")[0]  # "25%, small 50%": the case of 25%
                if (library, base) in BARS:
                    bar = BARS[(library, base)]
                    for v in dict.fromkeys(("plain", best)):
                        if v in variants:
                            f1 = variants[v]["f1"]
                            out.append(
                                {
                                    "bar": f"{library} {case} {how}: mean F1 >= {bar}",
                                    "variant": v,
                                    "value": round(f1, 4),
                                    "holds": f1 >= bar,
                                }
                            )
                elif base == "two":
                    for v in dict.fromkeys(("plain", best)):
                        if v not in variants:
                            continue
                        per = variants[v]["classes"]
                        worst_p = min(per[c]["precision"] for c in two if c in per)
                        worst_r = min(per[c]["recall"] for c in two if c in per)
                        out.append(
                            {
                                "bar": f"{library} two {how}: P >= 0.85, R >= 0.80 for "
                                + ", ".join(two),
                                "variant": v,
                                "value": [worst_p, worst_r],
                                "holds": worst_p >= TWO_BARS["precision"]
                                and worst_r >= TWO_BARS["recall"],
                            }
                        )
        for case in cases:
            if {"folders", "keywords"} <= set(cases[case]):
                a, b = cases[case]["folders"], cases[case]["keywords"]
                common = [v for v in a if v in b and v != "filed"]
                diff = max((abs(a[v]["f1"] - b[v]["f1"]) for v in common), default=float("nan"))
                out.append(
                    {
                        "bar": f"{library} {case}: folders and keywords within 0.01",
                        "variant": "all",
                        "value": round(diff, 4),
                        "holds": diff <= 0.01,
                    }
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--libraries", nargs="*", default=["both", "tf"], choices=list(LIBRARIES))
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--filings", nargs="*", default=["folders", "keywords"])
    ap.add_argument("--variants", nargs="*", default=["product", "plain"], choices=list(VARIANTS))
    ap.add_argument("--weak", nargs="*", type=float, default=[1.0, 10.0])
    ap.add_argument("--weak-on", nargs="*", default=["tf"], help="libraries the weak runs on")
    ap.add_argument("--plain-on", nargs="*", default=["tf"], help="libraries today's path runs on")
    ap.add_argument("--two", default="daisy,dandelion", help="the two species of case 'two'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--small",
        type=float,
        help="file the classes of fewer than 50 photos (flowers17's) at this fraction instead: "
        "the ceiling with more of their photos filed (the case is named '25%%, small 50%%')",
    )
    ap.add_argument("--keep", type=Path, help="work here and keep it (else a temporary folder)")
    args = ap.parse_args()
    needed = [MODEL, *(b for name in args.libraries for b in LIBRARIES[name])]
    missing = [p for p in needed if not p.exists()]
    if missing:
        sys.exit(f"needs {missing[0]} (the shared photos and model beside the repo)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="finder-bench-filed-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s, load {load()}] {text}", file=sys.stderr)

    # One library, indexed once: the largest set first, then the others by deleting photos from
    # its tree (finder index drops them; no photo is embedded twice).
    order = sorted(args.libraries, key=lambda name: -len(LIBRARIES[name]))
    photos_all = collect(order[0])
    tree, lib_dir = work / "tree", work / "library"
    if tree.exists():  # a kept work folder: the tree is laid out anew, the library reused
        shutil.rmtree(tree)
    report: dict = {}
    two = args.two.split(",")
    print("| library | case | filed as | variant | precision | recall | F1 | ECE | best-cut F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    choice = BackboneChoice(model=str(MODEL), views=1)
    try:
        with Library(lib_dir, backbone=choice) as lib:
            for library in order:
                bases = LIBRARIES[library]
                photos = [p for p in photos_all if any(b in p.source.parents for b in bases)]
                kept = {id(p) for p in photos}
                for p in photos_all:
                    if id(p) not in kept and p.where is not None:
                        p.where.unlink()
                        p.where = None
                photos_all = photos
                (lib_dir / "metric.npz").unlink(missing_ok=True)  # the library's own metric
                bench = Bench(
                    lib, tree, {p.name: p.label for p in photos}, log, library in args.plain_on
                )
                for base in args.cases:
                    only = two if base == "two" else None
                    filed = choose_filed(photos, CASES[base], only, args.seed, args.small)
                    case = base if args.small is None else f"{base}, small {args.small:.0%}"
                    for how in args.filings:
                        arrange(tree, photos, filed, how)
                        t0 = time.monotonic()
                        s = lib.index([str(tree)])
                        log(
                            f"{library} {case} {how}: indexed in {time.monotonic() - t0:.0f} s "
                            f"(embedded {s.embedded}, moved {s.moved}, deleted {s.deleted}, "
                            f"sidecars read {s.sidecars_read})"
                        )
                        weak = args.weak if library in args.weak_on else []
                        got = bench.evaluate(how, args.variants, weak)
                        report.setdefault(library, {}).setdefault(case, {})[how] = got
                        print_rows(library, case, how, got)
                log(f"{library}: {bench.reused} heads reused (the same filed ids)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    checked = bars(report, two)
    print()
    for b in checked:
        print(f"{'holds' if b['holds'] else 'FAILS'}  {b['bar']}  ({b['variant']}: {b['value']})")
    tops = ceilings(report)
    for c in tops:
        low = ", ".join(f"{k} {v[0]:.2f} ({v[1]:.2f})" for k, v in c["worst"].items())
        print(
            f"ceiling  {c['case']}: best-cut F1 {c['best_f1']:.3f} (answer {c['f1']:.3f}, "
            f"bar {c['bar']}); least: {low}"
        )
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime  # what the run cost, whatever else shared the cores
    print(f"{seconds:.0f} s in all ({cpu:.0f} s of CPU), load {load()}")
    print(
        json.dumps(
            {
                "libraries": report,
                "bars": checked,
                "ceilings": tops,
                "small_fraction": args.small,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "load": load(),
            }
        )
    )


if __name__ == "__main__":
    main()
