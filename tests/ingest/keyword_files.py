"""Keyword-bearing files the tests write: sidecars in the shapes digiKam, Lightroom, darktable
and ExifTool write them (namespaces and containers as in their own files), and JPEGs with XMP
and IPTC embedded as real APP1 / APP13 segments."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.conftest import make_photo

# a sidecar cut off mid-element, as a crash while saving leaves it
MALFORMED = b'<?xml version="1.0"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>\n  <dc:subj'


def _lis(items: list[str], indent: str = "     ") -> str:
    return "\n".join(f"{indent}<rdf:li>{item}</rdf:li>" for item in items)


def digikam_sidecar(paths: list[str]) -> str:
    """What digiKam (through Exiv2) writes to ``photo.jpg.xmp`` for tags like
    ``Animals/Pets/Rex``: the paths in digiKam:TagsList (a Seq, ``/``),
    MicrosoftPhoto:LastKeywordXMP (``/``) and lr:hierarchicalSubject (``|``), the leaves in
    dc:subject."""
    leaves = [p.split("/")[-1] for p in paths]
    bars = [p.replace("/", "|") for p in paths]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   exif:DateTimeOriginal="2019-06-01T10:00:00"
   xmp:Rating="3"
   MicrosoftPhoto:Rating="50">
   <digiKam:TagsList>
    <rdf:Seq>
{_lis(paths)}
    </rdf:Seq>
   </digiKam:TagsList>
   <MicrosoftPhoto:LastKeywordXMP>
    <rdf:Bag>
{_lis(paths)}
    </rdf:Bag>
   </MicrosoftPhoto:LastKeywordXMP>
   <lr:hierarchicalSubject>
    <rdf:Bag>
{_lis(bars)}
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <dc:subject>
    <rdf:Bag>
{_lis(leaves)}
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def lightroom_sidecar(paths: list[str], plain: list[str]) -> str:
    """What Lightroom Classic writes to ``photo.xmp``: the paths (``|``) in
    lr:hierarchicalSubject, every keyword it exports (leaves and their parents) in dc:subject,
    inside an xpacket."""
    toolkit = "Adobe XMP Core 7.0-c000 1.000000, 0000/00/00-00:00:00        "
    padding = " " * 100  # packets keep room to be edited in place
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="{toolkit}">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   xmp:CreatorTool="Adobe Photoshop Lightroom Classic 12.0 (Macintosh)"
   xmp:Rating="2"
   photoshop:DateCreated="2020-02-10T09:15:00"
   crs:Version="15.0"
   crs:Exposure2012="+0.35">
   <dc:subject>
    <rdf:Bag>
{_lis(plain)}
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
{_lis(paths)}
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
{padding}
<?xpacket end="w"?>"""


def darktable_sidecar(paths: list[str]) -> str:
    """What darktable writes to ``photo.jpg.xmp``: its own ``darktable|...`` tags beside the
    person's, in lr:hierarchicalSubject and (split) in dc:subject, and its history."""
    tags = ["darktable|changed", "darktable|format|jpg", *paths]
    flat = sorted({part for p in tags for part in p.split("|")})
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
   xmp:Rating="1"
   xmpMM:DerivedFrom="IMG_0001.jpg"
   darktable:xmp_version="5"
   darktable:history_end="1">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
      darktable:params="0000000000000000cdcccc3e0000804000000000"/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
{_lis(flat)}
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
{_lis(tags)}
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def exiftool_packet(paths: list[str]) -> str:
    """ExifTool's style: one rdf:Description per namespace, single quotes, xpacket."""
    return f"""<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/' x:xmptk='Image::ExifTool 12.76'>
<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>

 <rdf:Description rdf:about=''
  xmlns:dc='http://purl.org/dc/elements/1.1/'>
  <dc:subject>
   <rdf:Bag>
{_lis([p.split("|")[-1] for p in paths])}
   </rdf:Bag>
  </dc:subject>
 </rdf:Description>

 <rdf:Description rdf:about=''
  xmlns:lr='http://ns.adobe.com/lightroom/1.0/'>
  <lr:hierarchicalSubject>
   <rdf:Bag>
{_lis(paths)}
   </rdf:Bag>
  </lr:hierarchicalSubject>
 </rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end='w'?>"""


# -- embedded in a JPEG, as real segments ------------------------------------------------------
def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def iptc_record(keywords: list[str], utf8: bool = True) -> bytes:
    """IPTC IIM datasets: 1:90 (coded character set: UTF-8) and one 2:25 per keyword."""
    out = b""
    if utf8:
        out += b"\x1c\x01\x5a" + struct.pack(">H", 3) + b"\x1b%G"
    out += b"\x1c\x02\x00" + struct.pack(">H", 2) + b"\x00\x04"  # record version
    for word in keywords:
        data = word.encode("utf-8" if utf8 else "latin-1")
        out += b"\x1c\x02\x19" + struct.pack(">H", len(data)) + data
    return out


def photoshop_app13(iptc: bytes) -> bytes:
    """An APP13 segment: Photoshop 3.0 image resources holding the IPTC record (0x0404)."""
    data = iptc + (b"\x00" if len(iptc) % 2 else b"")
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc))
    return _segment(0xED, b"Photoshop 3.0\x00" + resource + data)


def xmp_app1(packet: str) -> bytes:
    """An APP1 segment holding an XMP packet."""
    return _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode("utf-8"))


def jpeg_with(path: Path, *segments: bytes, kind: str = "red", seed: int = 0) -> Path:
    """A real JPEG photo with ``segments`` (APP1 XMP, APP13 IPTC, ...) right after its SOI."""
    make_photo(path, kind, seed=seed)
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8"
    path.write_bytes(data[:2] + b"".join(segments) + data[2:])
    return path
