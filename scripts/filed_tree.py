"""The photos and the trees of ``scripts/bench_filed.py`` (issue 25): which sets make each
library, every photo named by a number (its name says nothing of its class), which of them are
filed in each case, and the tree laid out for it (folders named for the classes, or XMP sidecars
of both flavours in ``filed/``; the rest in ``unsorted/``); then the filed classes read back
through the catalog's own API. The scoring is ``scripts/filed_variants.py``'s."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finder.learn.names import class_name
from finder.library import Library

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
TF = SHARED / "tf_flowers"
PHOTOS = SHARED / "photos"
LIBRARIES = {"tf": (TF,), "both": (PHOTOS / "flowers17", PHOTOS / "pets", TF)}
PETS = ("cat", "dog")
SMALL = 50
"""A class with fewer photos than this is small (the flowers17 species: 20 each); ``--small``
files those at another fraction."""


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
    photos: list[Photo],
    fraction: float,
    only: Sequence[str] | None,
    seed: int,
    small: float | None = None,
) -> dict[int, str]:
    """Which photos (by position) are filed, under which class: ``fraction`` of each class
    (at least one), of the classes ``only`` when given; a class of fewer than ``SMALL`` photos
    at the fraction ``small`` instead, when given."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for k, p in enumerate(photos):
        by_label.setdefault(p.label, []).append(k)
    filed = {}
    for label in sorted(by_label):
        if only is not None and label not in only:
            continue
        members = by_label[label]
        share = small if small is not None and len(members) < SMALL else fraction
        n = max(1, round(share * len(members)))
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
    cat = lib.folder.open_catalog()
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
