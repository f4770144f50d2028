"""Reading keywords: sidecars of each application's shape, XMP and IPTC embedded in real JPEG
and PNG bytes, one keyword per path and leaf, the walk seeing sidecars, class names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from finder.ingest import crawl
from finder.ingest.decode import load_views_facts, read_facts
from finder.ingest.keywords import (
    XmpError,
    class_names,
    embedded_keywords,
    keyword_classes,
    merge_keywords,
    sidecar_keywords,
    xmp_keywords,
)
from finder.learn.names import class_name
from tests.conftest import make_photo
from tests.ingest.keyword_files import (
    darktable_sidecar,
    digikam_sidecar,
    exiftool_packet,
    iptc_record,
    jpeg_with,
    lightroom_sidecar,
    photoshop_app13,
    xmp_app1,
)


def test_digikam_paths_and_their_leaves_are_one_keyword_each() -> None:
    got = xmp_keywords(digikam_sidecar(["Animals/Pets/Rex", "Places/France/Paris", "Holiday"]))
    assert got == ("Animals|Pets|Rex", "Holiday", "Places|France|Paris")


def test_lightroom_hierarchy_with_its_parents_in_dc_subject() -> None:
    packet = lightroom_sidecar(["Animals|Cat", "Trips|2020|Rio"], ["Cat", "Animals", "Rio", "2020"])
    assert xmp_keywords(packet) == ("Animals|Cat", "Trips|2020|Rio")
    # a plain keyword beside them that is no node of theirs stays a keyword of its own
    packet = lightroom_sidecar(["Animals|Cat"], ["Cat", "Animals", "sunset"])
    assert xmp_keywords(packet) == ("Animals|Cat", "sunset")


def test_darktables_own_tags_are_not_keywords() -> None:
    assert xmp_keywords(darktable_sidecar(["Animals|Birds|Gulls"])) == ("Animals|Birds|Gulls",)
    assert xmp_keywords(darktable_sidecar([])) == ()


def test_exiftool_style_several_descriptions() -> None:
    assert xmp_keywords(exiftool_packet(["People|Ada", "Physics"])) == ("People|Ada", "Physics")


def test_merge_rules() -> None:
    # ancestors are implied, the same path from two properties is one, text is cleaned
    assert merge_keywords([["Animals"], ["Animals", "Pets", "Rex"]], []) == ("Animals|Pets|Rex",)
    assert merge_keywords([[" Animals ", "Pets\t", "", "Rex"]], ["rex", "PETS"]) == (
        "Animals|Pets|Rex",
    )
    assert merge_keywords([], ["a\x1b[31mb", "  two   words "]) == ("a [31mb", "two words")
    # darktable's paths written to dc:subject are paths
    assert merge_keywords([], ["darktable|format|ARW", "Birds|Gulls"]) == ("Birds|Gulls",)
    # composed and decomposed é are one keyword
    assert merge_keywords([], ["caf\u00e9", "cafe\u0301"]) == ("caf\u00e9",)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF", "not valid XML"),
        (b"<html><body>not xmp</body></html>", "no rdf:RDF"),
        (b"\xff\xd8\xff\xe0 a jpeg named .xmp", "not valid XML"),
        (b"", "not valid XML"),
    ],
)
def test_malformed_xmp_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(XmpError, match=reason):
        xmp_keywords(data)


def test_entity_expansion_is_refused(tmp_path: Path) -> None:
    """A billion-laughs sidecar is a parse error (expat's own protection), never a hang."""
    lol = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{k} "{("&a" + str(k - 1) + ";") * 10}">' for k in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE r [{lol}]><r>&a9;</r>'
    path = tmp_path / "bomb.jpg.xmp"
    path.write_text(bomb)
    with pytest.raises(XmpError, match="not valid XML"):
        sidecar_keywords(path)


def test_a_sidecar_that_is_no_file_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg.xmp").mkdir()
    with pytest.raises(XmpError, match="unreadable"):
        sidecar_keywords(tmp_path / "dir.jpg.xmp")
    fifo = tmp_path / "fifo.jpg.xmp"
    os.mkfifo(fifo)
    with pytest.raises(XmpError, match="unreadable"):
        sidecar_keywords(fifo)  # never blocks on a FIFO


def test_xmp_and_iptc_embedded_in_a_jpeg(tmp_path: Path) -> None:
    photo = jpeg_with(
        tmp_path / "both.jpg",
        xmp_app1(lightroom_sidecar(["Animals|Cat"], ["Cat", "Animals"])),
        photoshop_app13(iptc_record(["Cat", "Garden", "Zürich"])),
    )
    facts = read_facts(photo)  # headers only
    assert facts.keywords == ("Animals|Cat", "Garden", "Zürich")
    views, decoded = load_views_facts(photo, (32, 32))  # the index's one read: same facts
    assert views.shape == (1, 32, 32, 3) and decoded.keywords == facts.keywords


def test_iptc_alone_in_latin_1(tmp_path: Path) -> None:
    photo = jpeg_with(
        tmp_path / "iptc.jpg", photoshop_app13(iptc_record(["Café", "Dog"], utf8=False))
    )
    assert read_facts(photo).keywords == ("Café", "Dog")


def test_xmp_in_a_png(tmp_path: Path) -> None:
    path = make_photo(tmp_path / "p.png", "blue", seed=1)
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", digikam_sidecar(["Places/Rio"]))
    with Image.open(path) as im:
        im.load()
        im.save(path, pnginfo=info)
    assert read_facts(path).keywords == ("Places|Rio",)


def test_broken_embedded_metadata_gives_no_keywords(tmp_path: Path) -> None:
    photo = jpeg_with(
        tmp_path / "broken.jpg",
        xmp_app1("<x:xmpmeta><rdf:RDF><unclosed"),
        photoshop_app13(b"\x1c\x09garbage"),
    )
    facts = read_facts(photo)
    assert facts.keywords == () and facts.width == 160
    with Image.open(make_photo(tmp_path / "plain.jpg", "red", seed=2)) as im:
        assert embedded_keywords(im) == ()


def test_the_walk_sees_sidecars_in_both_namings(tmp_path: Path) -> None:
    long = make_photo(tmp_path / "a.jpg", "red", seed=1)
    Path(f"{long}.xmp").write_text(digikam_sidecar(["X"]))
    make_photo(tmp_path / "b.jpg", "red", seed=2)
    (tmp_path / "b.xmp").write_text(lightroom_sidecar(["Y"], ["Y"]))
    both = make_photo(tmp_path / "c.jpg", "red", seed=3)
    Path(f"{both}.xmp").write_text("long")
    (tmp_path / "c.xmp").write_text("short")
    make_photo(tmp_path / "d.jpg", "red", seed=4)
    (tmp_path / "d.jpg.xmp").mkdir()  # not a file: no sidecar
    found = {Path(f.path).name: f.sidecar for f in crawl.walk(tmp_path)}
    assert found["a.jpg"].path == f"{long}.xmp" and found["a.jpg"].size > 100
    assert found["b.jpg"].path == str(tmp_path / "b.xmp")
    assert found["c.jpg"].path == f"{both}.xmp"  # photo.jpg.xmp first, as `finder tag` picks
    assert found["d.jpg"] is None
    assert [f.sidecar for f in crawl.walk(long)] == [found["a.jpg"]]  # a root that is a file
    stamp = found["a.jpg"].stamp
    os.utime(f"{long}.xmp", ns=(1, 1))
    assert next(iter(crawl.walk(long))).sidecar.stamp != stamp


def test_class_names_leaf_else_path() -> None:
    names = class_names(
        ["Animals|Pets|Rex", "People|Rex", "Places|France|Paris", "Holiday", "Bad\u202eName"],
        class_name,
        nodes=False,
    )
    assert names == {
        "Animals|Pets|Rex": "animals/pets/rex",
        "People|Rex": "people/rex",
        "Places|France|Paris": "paris",
        "Holiday": "holiday",
    }  # a keyword holding a bidirectional override (stored by an older reader) gets no class
    with_nodes = class_names(["Animals|Pets|Rex", "Pets"], class_name)
    assert with_nodes == {
        "Animals": "animals",
        "Animals|Pets": "animals/pets",
        "Animals|Pets|Rex": "rex",
        "Pets": "pets",
    }
    assert keyword_classes(class_names(["Cat", "cat"], class_name)) == {"cat": ["Cat", "cat"]}


def test_a_name_normalise_refuses_gets_no_class() -> None:
    assert class_names(["x" * 300, "ok"], class_name) == {"ok": "ok"}  # class names are ≤ 200


def test_keywords_cross_a_ray_cluster_with_the_other_facts() -> None:
    from finder.embed.cluster_actor import facts_from_json, facts_json
    from finder.ingest.facts import PhotoFacts

    facts = PhotoFacts(4, 3, keywords=("Animals|Cat", "Garden"))
    assert facts_from_json(facts_json(facts)) == facts
