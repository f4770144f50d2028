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
vector (nothing is embedded twice) and reads the sidecars. The classes and their photos are
then read back through the catalog's own API: ``folder_counts`` and the folders' photos, or
``keyword_counts``, ``keyword_class_names`` and ``images_with_keyword``.

Each class's suggestions are its photos in ``unsorted/`` at or above its cut, scored against
the truth there: precision, recall, F1 and ECE (over every unsorted photo), as
``finder.learn.feedback.answer_scores`` gives them; means over the classes. The variants:

- ``plain``: today's path, ``Library.learn(CLASS, its filed photos)`` (what the issue measured:
  tf_flowers F1 0.881 at 25%, 0.855 at 10%);
- ``siblings``: the photos filed under the other classes given as counter-examples
  (``learn --not``: a photo in one folder is not in its siblings);
- ``weak W``: the same photos as counter-examples of weight W instead of the 3 an explicit
  counter-example weighs (a thoroughly tagged photo without a keyword is weak evidence against
  it); ``--weak`` lists the weights;
- ``one-folder``: the siblings' heads, each unsorted photo suggested for at most one class, the
  one of highest probability among those whose cut it passes (a photo is filed in one folder);
- ``many``: a head for hundreds of labels (see :func:`many_label_head`), with one-folder.

Everything but ``plain`` is an experiment of this script, not the product (``Library.learn``
is called for ``plain``; the others call ``finder.learn.train.train_head`` with the same inputs
``Library.learn`` gives it). ``--variants`` picks them. Prints a table per library and case, the
bars of issue 25, and the last line is JSON: per library, per case, per filing, per variant:
``precision``, ``recall``, ``f1``, ``ece`` (means) and per class.

    python scripts/bench_filed.py [--libraries tf both] [--cases 25% 10% two] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder.learn import train as train_module  # noqa: E402
from finder.learn.feedback import answer_scores, calibration_error  # noqa: E402
from finder.learn.head import Head  # noqa: E402
from finder.learn.names import class_name  # noqa: E402
from finder.learn.train import background_indices, train_head  # noqa: E402
from finder.library import BackboneChoice, Library  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
TF = SHARED / "tf_flowers"
PHOTOS = SHARED / "photos"
LIBRARIES = {"tf": (TF,), "both": (PHOTOS / "flowers17", PHOTOS / "pets", TF)}
PETS = ("cat", "dog")
CASES = {"25%": 0.25, "10%": 0.10, "two": 0.25}
VARIANTS = ("plain", "siblings", "weak", "one-folder", "many")
DEFAULT_VARIANTS = ("plain", "siblings", "weak", "one-folder")
BARS = {  # issue 25: mean F1 by library and case
    ("tf", "25%"): 0.90,
    ("both", "25%"): 0.87,
    ("tf", "10%"): 0.88,
    ("both", "10%"): 0.85,
}
TWO_BARS = {"precision": 0.85, "recall": 0.80}


@dataclass
class Photo:
    source: Path
    label: str
    name: str  # its file name in the tree: a number, the source's extension
    where: Path | None = None  # where it is in the tree now


def collect(library: str) -> list[Photo]:
    """Every photo of the library's sets, labelled by its folder, named by a number."""
    found = []
    for base in LIBRARIES[library]:
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            for f in sorted(folder.iterdir()):
                if f.is_file() and f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    found.append((f, folder.name))
    order = np.random.default_rng(12345).permutation(len(found))
    return [
        Photo(found[k][0], found[k][1], f"{n:05d}{found[k][0].suffix.lower()}")
        for n, k in enumerate(order)
    ]


def choose_filed(
    photos: list[Photo], fraction: float, only: Sequence[str] | None, seed: int
) -> dict[int, str]:
    """Which photos (by position) are filed, under which class: ``fraction`` of each class
    (at least one), of the classes ``only`` when given."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for k, p in enumerate(photos):
        by_label.setdefault(p.label, []).append(k)
    filed = {}
    for label in sorted(by_label):
        if only is not None and label not in only:
            continue
        members = by_label[label]
        n = max(1, round(fraction * len(members)))
        for k in rng.choice(members, size=n, replace=False):
            filed[int(k)] = label
    return filed


def group(label: str) -> str:
    return "Pets" if label in PETS else "Flowers"


def sidecar(label: str, digikam: bool) -> tuple[str, str]:
    """(name suffix, text) of a sidecar filing a photo under ``Group|Label``: digiKam's
    ``photo.jpg.xmp`` or Lightroom's ``photo.xmp``."""
    leaf, top = label.capitalize(), group(label)
    rdf = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    if digikam:
        body = (
            f'  <rdf:Description rdf:about="" xmlns:digiKam="http://www.digikam.org/ns/1.0/"'
            f' xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
            f"   <digiKam:TagsList><rdf:Seq><rdf:li>{top}/{leaf}</rdf:li></rdf:Seq>"
            f"</digiKam:TagsList>\n"
            f"   <dc:subject><rdf:Bag><rdf:li>{leaf}</rdf:li></rdf:Bag></dc:subject>\n"
            "  </rdf:Description>\n"
        )
    else:
        body = (
            f'  <rdf:Description rdf:about="" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"'
            f' xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
            f"   <dc:subject><rdf:Bag><rdf:li>{leaf}</rdf:li><rdf:li>{top}</rdf:li></rdf:Bag>"
            f"</dc:subject>\n"
            f"   <lr:hierarchicalSubject><rdf:Bag><rdf:li>{top}|{leaf}</rdf:li></rdf:Bag>"
            f"</lr:hierarchicalSubject>\n"
            "  </rdf:Description>\n"
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n <rdf:RDF {rdf}>\n{body} </rdf:RDF>\n'
        "</x:xmpmeta>\n"
    )
    return (".jpg.xmp" if digikam else ".xmp"), text


def link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or hard links refused
        os.symlink(source, target)


def arrange(tree: Path, photos: list[Photo], filed: dict[int, str], how: str) -> None:
    """Put every photo where the case says (moving what is already in the tree), and write or
    remove the sidecars."""
    for old in tree.rglob("*.xmp"):
        old.unlink()
    for k, p in enumerate(photos):
        label = filed.get(k)
        if label is None:
            folder = tree / "unsorted"
        else:
            folder = tree / (label if how == "folders" else "filed")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / p.name
        if p.where is None:
            link(p.source, target)
        elif p.where != target:
            os.rename(p.where, target)
        p.where = target
        if label is not None and how == "keywords":
            suffix, text = sidecar(label, digikam=k % 2 == 0)
            (folder / (Path(p.name).stem + suffix)).write_text(text)
    for folder in list(tree.iterdir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def filed_classes(lib: Library, tree: Path, how: str) -> dict[str, np.ndarray]:
    """Each filed class and its photos' ids, as the catalog tells them."""
    cat = lib.reader
    out = {}
    if how == "folders":
        for f in cat.folder_counts(str(tree)):
            if f.folder and f.folder != "unsorted" and f.own:
                ids = cat.ids_under(str(tree / f.folder), "ok")
                out[class_name(f.folder)] = np.sort(np.asarray(ids, dtype=np.int64))
        return out
    names = cat.keyword_class_names(class_name)
    for c in cat.keyword_counts():
        if c.own and c.path in names:  # keywords themselves: a parent needs --parents
            ids = cat.images_with_keyword(c.path)
            out[names[c.path]] = np.sort(np.asarray(ids, dtype=np.int64))
    return out


# -- training ---------------------------------------------------------------------------------
def teach(
    lib: Library,
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    neg_weight: float = train_module.EXPLICIT_NEGATIVE_WEIGHT,
    seed: int = 0,
) -> Head:
    """What ``Library.learn`` does for a new class from these ids (examples ``pos``,
    counter-examples ``neg``), with counter-examples weighing ``neg_weight``."""
    store = lib.read_store
    all_ids = np.sort(store.ids())
    given = np.concatenate([pos, neg])
    exclude = np.flatnonzero(np.isin(all_ids, given))
    picked = background_indices(len(all_ids), exclude, np.random.default_rng(seed))
    background = store.get(all_ids[np.sort(picked)])
    P, N = store.get(pos), store.get(neg) if len(neg) else np.zeros((0, store.dim), np.float32)
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int)
    saved = train_module.EXPLICIT_NEGATIVE_WEIGHT
    train_module.EXPLICIT_NEGATIVE_WEIGHT = neg_weight
    try:
        return train_head(
            P,
            N,
            background,
            seed=seed,
            marked=(np.concatenate([P, N]), labels),
            metric=lib.metric(),
        )
    finally:
        train_module.EXPLICIT_NEGATIVE_WEIGHT = saved


def learn_plain(lib: Library, name: str, pos: np.ndarray) -> Head:
    """Today's path: ``Library.learn(name, its filed photos)``."""
    paths = lib.reader.paths_for(pos.tolist())
    if name in lib.reader.class_names():
        lib.forget(name)
    record = lib.learn(name, [paths[int(i)] for i in pos])
    head = Head.from_dict(record["head"])
    lib.forget(name)
    return head


def many_label_head(lib: Library, pos: np.ndarray, neg: np.ndarray, seed: int = 0) -> Head:
    """A head for hundreds of labels (to be written: see the report)."""
    raise NotImplementedError


# -- scoring ----------------------------------------------------------------------------------
def scores(truth: np.ndarray, head: Head, X: np.ndarray) -> dict[str, float]:
    s = answer_scores(truth, head, X)
    return {k: float(s[k]) for k in ("precision", "recall", "f1", "ece", "ap", "best_f1")}


def one_folder(
    heads: dict[str, Head], X: np.ndarray, truth: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Each photo suggested for at most one class: the most probable among those whose cut it
    passes."""
    names = sorted(heads)
    P = np.stack([heads[c].proba(X) for c in names], axis=1)
    passes = np.stack(
        [heads[c].logits(X) >= np.float32(heads[c].logit_threshold) for c in names], axis=1
    )
    best = np.argmax(np.where(passes, P, -1.0), axis=1)
    out = {}
    for j, c in enumerate(names):
        returned = passes[:, j] & (best == j)
        y = truth[c]
        tp = int((y & returned).sum())
        precision = tp / int(returned.sum()) if returned.any() else 0.0
        recall = tp / max(int(y.sum()), 1)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        out[c] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "ece": calibration_error(y, P[:, j]),
        }
    return out


def means(per_class: dict[str, dict[str, float]]) -> dict:
    keys = ("precision", "recall", "f1", "ece")
    return {k: float(np.mean([v[k] for v in per_class.values()])) for k in keys} | {
        "classes": {c: {k: round(v[k], 4) for k in keys} for c, v in per_class.items()}
    }


def evaluate(
    lib: Library,
    tree: Path,
    how: str,
    label_of: dict[str, str],
    variants: Sequence[str],
    weak: Sequence[float],
    log: Callable[[str], None],
) -> dict[str, dict]:
    classes = filed_classes(lib, tree, how)
    cat = lib.reader
    unsorted = np.sort(np.asarray(cat.ids_under(str(tree / "unsorted"), "ok"), dtype=np.int64))
    paths = cat.paths_for(unsorted.tolist())
    labels = np.asarray([label_of[os.path.basename(paths[int(i)])] for i in unsorted])
    X = lib.read_store.get(unsorted)
    truth = {c: labels == c for c in classes}
    out: dict[str, dict] = {}
    sibling_heads: dict[str, Head] = {}

    def others(c: str) -> np.ndarray:
        rest = [ids for name, ids in classes.items() if name != c]
        return np.sort(np.concatenate(rest)) if rest else np.zeros(0, np.int64)

    for variant in variants:
        started = time.monotonic()
        if variant == "plain":
            per = {c: scores(truth[c], learn_plain(lib, c, ids), X) for c, ids in classes.items()}
            out["plain"] = means(per)
        elif variant == "siblings":
            for c, ids in classes.items():
                sibling_heads[c] = teach(lib, ids, others(c))
            out["siblings"] = means({c: scores(truth[c], h, X) for c, h in sibling_heads.items()})
        elif variant == "weak":
            for w in weak:
                heads = {c: teach(lib, ids, others(c), neg_weight=w) for c, ids in classes.items()}
                out[f"weak {w:g}"] = means({c: scores(truth[c], h, X) for c, h in heads.items()})
        elif variant == "one-folder":
            if not sibling_heads:
                sibling_heads = {c: teach(lib, ids, others(c)) for c, ids in classes.items()}
            out["one-folder"] = means(one_folder(sibling_heads, X, truth))
        elif variant == "many":
            heads = {c: many_label_head(lib, ids, others(c)) for c, ids in classes.items()}
            out["many"] = means({c: scores(truth[c], h, X) for c, h in heads.items()})
            out["many one-folder"] = means(one_folder(heads, X, truth))
        log(f"    {how} {variant}: {time.monotonic() - started:.0f} s")
    return out


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--libraries", nargs="*", default=list(LIBRARIES), choices=list(LIBRARIES))
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--filings", nargs="*", default=["folders", "keywords"])
    ap.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--weak", nargs="*", type=float, default=[1.0])
    ap.add_argument("--two", default="daisy,dandelion", help="the two species of case 'two'")
    ap.add_argument("--seed", type=int, default=0)
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
        print(f"[{time.monotonic() - started:6.0f} s, load {load()}] {text}", file=sys.stderr)

    report: dict = {"load_start": load(), "libraries": {}}
    try:
        for library in args.libraries:
            photos = collect(library)
            label_of = {p.name: p.label for p in photos}
            tree = work / library / "tree"
            if tree.exists():
                shutil.rmtree(tree)
            lib_dir = work / library / "library"
            with Library(lib_dir, backbone=BackboneChoice(model=str(MODEL), views=1)) as lib:
                for case in args.cases:
                    only = args.two.split(",") if case == "two" else None
                    filed = choose_filed(photos, CASES[case], only, args.seed)
                    for how in args.filings:
                        arrange(tree, photos, filed, how)
                        t0 = time.monotonic()
                        summary = lib.index([str(tree)])
                        log(
                            f"{library} {case} {how}: indexed in {time.monotonic() - t0:.0f} s "
                            f"(embedded {summary.embedded}, moved {summary.moved}, "
                            f"sidecars read {summary.sidecars_read})"
                        )
                        got = evaluate(lib, tree, how, label_of, args.variants, args.weak, log)
                        report["libraries"].setdefault(library, {}).setdefault(case, {})[how] = got
                        for variant, m in got.items():
                            print(
                                f"{library:5} {case:4} {how:8} {variant:16} P {m['precision']:.3f}"
                                f"  R {m['recall']:.3f}  F1 {m['f1']:.3f}  ECE {m['ece']:.3f}",
                                flush=True,
                            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = time.monotonic() - started
    report["load_end"] = load()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
