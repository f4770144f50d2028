"""A class name as a keyword in XMP sidecar files, so that digiKam, darktable and Lightroom
see finder's classes. The photo itself is never opened for writing.

Which sidecar: ``photo.jpg.xmp`` when it exists (darktable's and digiKam's naming), else
``photo.xmp`` when it exists (Lightroom's and digiKam's other naming), else a new
``photo.jpg.xmp``. The keyword goes into ``dc:subject`` (a bag of keywords, read by all three)
and, as ``finder|NAME``, into ``lr:hierarchicalSubject`` (a "finder" keyword group in
Lightroom, digiKam and darktable). An existing sidecar is merged: everything it holds is kept,
the keyword is added to its bags (created in its first ``rdf:Description`` when missing), and
a keyword already there is not added twice. Sidecars are replaced atomically (a temporary file
renamed over the old one, its permissions kept).
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from finder.errors import ExportError
from finder.ingest.crawl import sidecar_names
from finder.ingest.keywords import NS as KEYWORD_NS
from finder.ingest.keywords import XmpError, parse_xmp, rdf_root

NS = {k: KEYWORD_NS[k] for k in ("x", "rdf", "dc", "lr")}
GROUP = "finder"  # lr:hierarchicalSubject parent of every class keyword
CREATE, ADD, HAS = "create", "add", "has"

_PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_END = '\n<?xpacket end="w"?>\n'


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


@dataclass(frozen=True)
class Tagged:
    photo: str
    sidecar: str
    action: str  # "create" (a new sidecar), "add" (merged into one), "has" (already there)


def sidecar_for(photo: str) -> str:
    """The sidecar of ``photo`` (see the module docstring for the choice; the index reads
    the same one, ``finder.ingest.crawl.sidecar_names``)."""
    long, short = sidecar_names(photo)
    if os.path.exists(long):
        return long
    if short is not None and os.path.exists(short):
        return short
    return long


def tag(photo: str, keyword: str, *, dry_run: bool = False) -> Tagged:
    """Add ``keyword`` to the sidecar of ``photo`` (or only say what would be done)."""
    sidecar = sidecar_for(photo)
    if not os.path.exists(sidecar):
        if not dry_run:
            _write(sidecar, _new_packet(keyword), mode=None)
        return Tagged(photo, sidecar, CREATE)
    try:
        with open(sidecar, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ExportError(f"cannot read the sidecar {sidecar}: {e.strerror}") from None
    text, changed = merge(data, keyword, where=sidecar)
    if changed and not dry_run:
        _write(sidecar, text, mode=os.stat(sidecar).st_mode & 0o7777)
    return Tagged(photo, sidecar, ADD if changed else HAS)


def merge(data: bytes, keyword: str, where: str = "sidecar") -> tuple[str, bool]:
    """The XMP ``data`` with ``keyword`` in its keyword bags, and whether anything changed."""
    prefixes = _prefixes(data, where)
    try:  # the parser the index reads keywords with (finder.ingest.keywords)
        root = parse_xmp(data, comments=True)
    except XmpError as e:
        raise ExportError(f"the sidecar {where} {e}; left as it is") from None
    rdf = rdf_root(root)
    assert rdf is not None  # parse_xmp refuses a packet without one
    descriptions = rdf.findall(_q("rdf", "Description"))
    if not descriptions:
        descriptions = [ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})]
    changed = _add(descriptions, _q("dc", "subject"), keyword)
    changed |= _add(descriptions, _q("lr", "hierarchicalSubject"), f"{GROUP}|{keyword}")
    for prefix, uri in {**prefixes, **NS}.items():
        _register(prefix, uri)
    body = ET.tostring(root, encoding="unicode")
    if b"<?xpacket" in data:  # written back in the style it came in
        return _PACKET_BEGIN + body + _PACKET_END, changed
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml"):
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n", changed
    return body + "\n", changed


def _add(descriptions: list[ET.Element], prop: str, keyword: str) -> bool:
    element = next((e for d in descriptions if (e := d.find(prop)) is not None), None)
    if element is None:
        element = ET.SubElement(descriptions[0], prop)
    bag = next((c for c in element if c.tag in {_q("rdf", n) for n in ("Bag", "Seq", "Alt")}), None)
    if bag is None:
        bag = ET.SubElement(element, _q("rdf", "Bag"))
    if any((li.text or "").strip() == keyword for li in bag.findall(_q("rdf", "li"))):
        return False
    ET.SubElement(bag, _q("rdf", "li")).text = keyword
    return True


def _prefixes(data: bytes, where: str) -> dict[str, str]:
    """The namespace prefixes the file uses, so that it is written back with them."""
    out: dict[str, str] = {}
    try:
        for _, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
            out.setdefault(prefix, uri)
    except ET.ParseError as e:
        raise ExportError(f"the sidecar {where} is not valid XML ({e}); left as it is") from None
    return out


def _register(prefix: str, uri: str) -> None:
    if prefix and not re.fullmatch(r"ns\d+", prefix):
        try:
            ET.register_namespace(prefix, uri)
        except ValueError:
            pass


def _new_packet(keyword: str) -> str:
    x, rdf, dc, lr = (NS[k] for k in ("x", "rdf", "dc", "lr"))
    kw = _escape(keyword)
    group = _escape(f"{GROUP}|{keyword}")
    return (
        f"{_PACKET_BEGIN}"
        f'<x:xmpmeta xmlns:x="{x}" x:xmptk="finder">\n'
        f' <rdf:RDF xmlns:rdf="{rdf}">\n'
        f'  <rdf:Description rdf:about="" xmlns:dc="{dc}" xmlns:lr="{lr}">\n'
        f"   <dc:subject><rdf:Bag><rdf:li>{kw}</rdf:li></rdf:Bag></dc:subject>\n"
        f"   <lr:hierarchicalSubject><rdf:Bag><rdf:li>{group}</rdf:li></rdf:Bag>"
        f"</lr:hierarchicalSubject>\n"
        f"  </rdf:Description>\n"
        f" </rdf:RDF>\n"
        f"</x:xmpmeta>"
        f"{_PACKET_END}"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write(path: str, text: str, mode: int | None) -> None:
    """Write ``path`` atomically: a temporary file beside it, then renamed over it."""
    tmp = f"{path}.finder-tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ExportError(f"cannot write the sidecar {path}: {e.strerror}") from None


def tag_many(
    photos: list[str], keyword: str, *, dry_run: bool = False
) -> tuple[list[Tagged], list[str]]:
    """``tag`` each photo; a sidecar that cannot be read or written is reported (second list,
    one line each) and left as it was, and the others are still tagged."""
    keyword = keyword.strip()
    if not keyword:
        raise ExportError("a keyword needs some text")
    done: list[Tagged] = []
    errors: list[str] = []
    for photo in photos:
        try:
            done.append(tag(photo, keyword, dry_run=dry_run))
        except ExportError as e:
            errors.append(str(e))
    return done, errors
