"""Class keywords in XMP sidecars: created, merged with an existing sidecar, never twice, and
the photo itself never touched."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from finder.act.xmp import ADD, CREATE, HAS, NS, sidecar_for, tag, tag_many

DARKTABLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmp:Rating="4"
   darktable:xmp_version="5">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def keywords(sidecar: Path) -> tuple[list[str], list[str]]:
    root = ET.parse(sidecar).getroot()
    li = f"{{{NS['rdf']}}}li"
    subject = [e.text for s in root.iter(f"{{{NS['dc']}}}subject") for e in s.iter(li)]
    hier = [e.text for s in root.iter(f"{{{NS['lr']}}}hierarchicalSubject") for e in s.iter(li)]
    return subject, hier


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture
def jpg(tmp_path: Path) -> Path:
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(b"\xff\xd8 pretend jpeg \xff\xd9")
    return path


def test_a_new_sidecar_beside_the_photo(jpg: Path) -> None:
    before = digest(jpg)
    done = tag(str(jpg), "cat")
    assert done.action == CREATE and done.sidecar == str(jpg) + ".xmp"
    assert keywords(Path(done.sidecar)) == (["cat"], ["finder|cat"])
    assert Path(done.sidecar).read_text().startswith("<?xpacket")
    assert tag(str(jpg), "cat").action == HAS  # never twice
    assert keywords(Path(done.sidecar)) == (["cat"], ["finder|cat"])
    assert digest(jpg) == before


def test_merged_with_an_existing_sidecar_keeping_everything(jpg: Path) -> None:
    sidecar = Path(str(jpg) + ".xmp")
    sidecar.write_bytes(DARKTABLE)
    sidecar.chmod(0o640)
    before = digest(jpg)
    assert tag(str(jpg), "cat").action == ADD
    assert keywords(sidecar) == (["holiday", "cat"], ["finder|cat"])
    text = sidecar.read_text()
    root = ET.fromstring(text)
    desc = root.find(f".//{{{NS['rdf']}}}Description")
    assert desc.get("{http://ns.adobe.com/xap/1.0/}Rating") == "4"
    rdf_li = f"{{{NS['rdf']}}}li"
    op = root.find(f".//{{http://darktable.sf.net/}}history//{rdf_li}")
    assert op.get("{http://darktable.sf.net/}operation") == "exposure"
    assert "xmlns:darktable=" in text and "ns0:" not in text  # prefixes kept
    assert text.startswith("<?xml")  # written back in its own style
    assert sidecar.stat().st_mode & 0o777 == 0o640
    assert tag(str(jpg), "dog").action == ADD
    assert tag(str(jpg), "cat").action == HAS
    assert keywords(sidecar) == (["holiday", "cat", "dog"], ["finder|cat", "finder|dog"])
    assert digest(jpg) == before


def test_photo_xmp_is_used_when_it_exists(tmp_path: Path, jpg: Path) -> None:
    short = tmp_path / "IMG_0001.xmp"
    short.write_bytes(DARKTABLE)
    assert sidecar_for(str(jpg)) == str(short)
    assert tag(str(jpg), "cat").sidecar == str(short)
    assert not Path(str(jpg) + ".xmp").exists()
    Path(str(jpg) + ".xmp").write_bytes(DARKTABLE)  # both: photo.jpg.xmp wins
    assert sidecar_for(str(jpg)) == str(jpg) + ".xmp"


def test_dry_run_writes_nothing(tmp_path: Path, jpg: Path) -> None:
    other = tmp_path / "other.jpg"
    other.write_bytes(b"x")
    Path(str(other) + ".xmp").write_bytes(DARKTABLE)
    before = Path(str(other) + ".xmp").read_bytes()
    done, errors = tag_many([str(jpg), str(other)], "cat", dry_run=True)
    assert [d.action for d in done] == [CREATE, ADD] and errors == []
    assert not Path(str(jpg) + ".xmp").exists()
    assert Path(str(other) + ".xmp").read_bytes() == before


def test_a_broken_sidecar_is_reported_and_left_alone(tmp_path: Path, jpg: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"x")
    Path(str(bad) + ".xmp").write_bytes(b"<x:xmpmeta><not closed")
    done, errors = tag_many([str(bad), str(jpg)], "cat")
    assert [d.photo for d in done] == [str(jpg)]
    assert len(errors) == 1 and "not valid XML" in errors[0] and "\n" not in errors[0]
    assert Path(str(bad) + ".xmp").read_bytes() == b"<x:xmpmeta><not closed"


def test_keywords_with_markup_characters_round_trip(jpg: Path) -> None:
    tag(str(jpg), "cats & <dogs>")
    assert keywords(Path(str(jpg) + ".xmp")) == (["cats & <dogs>"], ["finder|cats & <dogs>"])


# -- a keyword in its own hierarchy (finder suggest --apply / --unapply) ------------------------
def _elements(sidecar: Path) -> list[tuple[str, str, tuple]]:
    """Every element of a sidecar: (tag, text, attributes), in document order."""
    root = ET.parse(sidecar).getroot()
    return [(e.tag, (e.text or "").strip(), tuple(sorted(e.attrib.items()))) for e in root.iter()]


def test_file_keyword_into_a_lightroom_sidecar_and_back(tmp_path: Path, jpg: Path) -> None:
    from finder.act.xmp import file_keyword, unfile_keyword
    from finder.ingest.keywords import sidecar_keywords
    from tests.ingest.keyword_files import lightroom_sidecar

    side = jpg.with_suffix(".xmp")  # Lightroom's photo.xmp
    side.write_text(lightroom_sidecar(["Places|Paris"], ["Paris", "Places"]))
    before, photo = _elements(side), hashlib.sha256(jpg.read_bytes()).hexdigest()
    done = file_keyword(str(jpg), ["Flowers", "Tulip"])
    assert (done.sidecar, done.action) == (str(side), ADD)
    assert done.added == (("dc:subject", "Tulip"), ("lr:hierarchicalSubject", "Flowers|Tulip"))
    assert sidecar_keywords(side) == ("Flowers|Tulip", "Places|Paris")
    after = _elements(side)
    assert [e for e in after if e[1] not in ("Tulip", "Flowers|Tulip")] == before
    assert side.read_text().startswith("<?xpacket")  # written back in its own style
    again = file_keyword(str(jpg), ["Flowers", "Tulip"])
    assert (again.action, again.added) == (HAS, ())
    unfile_keyword(str(side), list(done.added))
    assert _elements(side) == before
    assert hashlib.sha256(jpg.read_bytes()).hexdigest() == photo


def test_file_keyword_creates_a_sidecar_and_unfile_removes_it(jpg: Path) -> None:
    from finder.act.xmp import file_keyword, unfile_keyword
    from finder.ingest.keywords import sidecar_keywords

    dry = file_keyword(str(jpg), ["Animals", "Pets", "Rex"], dry_run=True)
    assert dry.action == CREATE and not Path(dry.sidecar).exists()
    done = file_keyword(str(jpg), ["Animals", "Pets", "Rex"])
    assert done.sidecar == f"{jpg}.xmp"
    assert sidecar_keywords(done.sidecar) == ("Animals|Pets|Rex",)
    unfile_keyword(done.sidecar, list(done.added))
    assert not Path(done.sidecar).exists()


def test_file_keyword_in_a_digikam_sidecar_adds_its_tags_list(tmp_path: Path, jpg: Path) -> None:
    from finder.act.xmp import file_keyword
    from finder.ingest.keywords import sidecar_keywords
    from tests.ingest.keyword_files import digikam_sidecar

    side = Path(f"{jpg}.xmp")
    side.write_text(digikam_sidecar(["Places/Paris"]))
    done = file_keyword(str(jpg), ["Flowers", "Tulip"])
    assert ("digiKam:TagsList", "Flowers/Tulip") in done.added
    assert sidecar_keywords(side) == ("Flowers|Tulip", "Places|Paris")


def test_a_broken_sidecar_is_not_filed_into(jpg: Path) -> None:
    from finder.act.xmp import file_keyword
    from finder.errors import ExportError

    side = Path(f"{jpg}.xmp")
    side.write_bytes(b"<x:xmpmeta><rdf:RDF><dc:subj")
    with pytest.raises(ExportError, match="left as it is"):
        file_keyword(str(jpg), ["Flowers", "Tulip"])
    assert side.read_bytes() == b"<x:xmpmeta><rdf:RDF><dc:subj"
