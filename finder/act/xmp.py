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

NS = {k: KEYWORD_NS[k] for k in ("x", "rdf", "dc", "lr", "digiKam")}
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
    added: tuple[tuple[str, str], ...] = ()  # (property, value) added (file_keyword)


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
    # the parser the index reads keywords with (finder.ingest.keywords)
    root, descriptions, prefixes = _parsed(data, where)
    changed = _add(descriptions, _q("dc", "subject"), keyword)
    changed |= _add(descriptions, _q("lr", "hierarchicalSubject"), f"{GROUP}|{keyword}")
    return _serialise(root, data, prefixes), changed


def _serialise(root: ET.Element, data: bytes, prefixes: dict[str, str]) -> str:
    """The tree written back in the style ``data`` came in, with its own prefixes."""
    for prefix, uri in {**prefixes, **NS}.items():
        _register(prefix, uri)
    body = ET.tostring(root, encoding="unicode")
    if b"<?xpacket" in data:
        return _PACKET_BEGIN + body + _PACKET_END
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml"):
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
    return body + "\n"


def _parsed(data: bytes, where: str) -> tuple[ET.Element, list[ET.Element], dict[str, str]]:
    """(root, its rdf:Descriptions, its prefixes) of a sidecar's bytes; ExportError when it
    is not XMP (and then it is left as it is)."""
    prefixes = _prefixes(data, where)
    try:
        root = parse_xmp(data, comments=True)
    except XmpError as e:
        raise ExportError(f"the sidecar {where} {e}; left as it is") from None
    rdf = rdf_root(root)
    assert rdf is not None  # parse_xmp refuses a packet without one
    descriptions = rdf.findall(_q("rdf", "Description"))
    if not descriptions:
        descriptions = [ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})]
    return root, descriptions, prefixes


def keyword_values(parts: list[str], digikam: bool) -> list[tuple[str, str]]:
    """(property, value) that file a photo under the keyword of these parts, as the
    applications read them: its leaf in ``dc:subject``, the path in ``lr:hierarchicalSubject``
    (``Flowers|Daisy``) and, in a digiKam sidecar, in ``digiKam:TagsList`` (``Flowers/Daisy``)."""
    out = [("dc:subject", parts[-1])]
    if len(parts) > 1:
        out.append(("lr:hierarchicalSubject", "|".join(parts)))
    if digikam:
        out.append(("digiKam:TagsList", "/".join(parts)))
    return out


def file_keyword(photo: str, parts: list[str], *, dry_run: bool = False) -> Tagged:
    """File ``photo`` under the keyword of ``parts`` (its own hierarchy, not under
    ``finder|``) in its sidecar, merged as ``tag`` merges; ``added`` says what was added."""
    sidecar = sidecar_for(photo)
    if not os.path.exists(sidecar):
        values = keyword_values(parts, digikam=False)
        if not dry_run:
            _write(sidecar, _new_filed_packet(values), mode=None)
        return Tagged(photo, sidecar, CREATE, (("file", "created"), *values))
    data = _read(sidecar)
    root, descriptions, prefixes = _parsed(data, sidecar)
    digikam = any(d.find(_q("digiKam", "TagsList")) is not None for d in descriptions)
    added = []
    for prop, value in keyword_values(parts, digikam):
        if _add(descriptions, _q(*prop.split(":")), value):
            added.append((prop, value))
    if added and not dry_run:
        _write(sidecar, _serialise(root, data, prefixes), os.stat(sidecar).st_mode & 0o7777)
    return Tagged(photo, sidecar, ADD if added else HAS, tuple(added))


def unfile_keyword(sidecar: str, added: list[tuple[str, str]]) -> None:
    """Take back what ``file_keyword`` added to ``sidecar`` (and nothing else): each value
    from its property (the property dropped once empty); a sidecar finder created and that
    holds nothing else is removed."""
    if not os.path.exists(sidecar):
        return
    values = [(p, v) for p, v in added if p != "file"]
    data = _read(sidecar)
    if ("file", "created") in [tuple(a) for a in added]:
        if data.decode("utf-8", "replace") == _new_filed_packet(values):
            try:
                os.unlink(sidecar)
            except OSError as e:
                raise ExportError(f"cannot remove the sidecar {sidecar}: {e.strerror}") from None
            return
    root, descriptions, prefixes = _parsed(data, sidecar)
    changed = False
    for prop, value in values:
        for d in descriptions:
            element = d.find(_q(*prop.split(":")))
            if element is None:
                continue
            for bag in element:
                for li in bag.findall(_q("rdf", "li")):
                    if (li.text or "").strip() == value:
                        bag.remove(li)
                        changed = True
                if not bag.findall(_q("rdf", "li")):
                    element.remove(bag)
            if not len(element) and not (element.text or "").strip():
                d.remove(element)
    if changed:
        _write(sidecar, _serialise(root, data, prefixes), os.stat(sidecar).st_mode & 0o7777)


def _read(sidecar: str) -> bytes:
    try:
        with open(sidecar, "rb") as f:
            return f.read()
    except OSError as e:
        raise ExportError(f"cannot read the sidecar {sidecar}: {e.strerror}") from None


def _new_filed_packet(values: list[tuple[str, str]]) -> str:
    x, rdf = NS["x"], NS["rdf"]
    props = "".join(
        f"   <{p}><rdf:Bag><rdf:li>{_escape(v)}</rdf:li></rdf:Bag></{p}>\n" for p, v in values
    )
    spaces = " ".join(
        f'xmlns:{k}="{NS[k]}"' for k in dict.fromkeys(p.split(":")[0] for p, _ in values)
    )
    return (
        f"{_PACKET_BEGIN}"
        f'<x:xmpmeta xmlns:x="{x}" x:xmptk="finder">\n'
        f' <rdf:RDF xmlns:rdf="{rdf}">\n'
        f'  <rdf:Description rdf:about="" {spaces}>\n'
        f"{props}"
        f"  </rdf:Description>\n"
        f" </rdf:RDF>\n"
        f"</x:xmpmeta>"
        f"{_PACKET_END}"
    )


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
