"""What a person has filed a photo under: its keywords, from XMP and IPTC, embedded or beside it.

A keyword is a path from the top of a hierarchy to its leaf, kept as its parts joined by ``|``
(Lightroom's separator): ``Animals|Pets|Rex``; a keyword without a hierarchy is its leaf alone
(``holiday``). Where the keywords come from:

- **XMP**, embedded in the photo (JPEG APP1, PNG iTXt, TIFF tag 700, WebP, AVIF, HEIF: what
  Pillow puts in ``info["xmp"]``, so from the same single read as the EXIF) or in its sidecar
  (``photo.jpg.xmp``, else ``photo.xmp``: :func:`finder.ingest.crawl.sidecar_names`):
  ``lr:hierarchicalSubject`` (paths separated by ``|``: Lightroom, darktable, digiKam),
  ``digiKam:TagsList`` and ``MicrosoftPhoto:LastKeywordXMP`` (paths separated by ``/``: digiKam,
  Windows Photo Gallery), and ``dc:subject`` (plain keywords: every application writes them;
  darktable writes its own paths there too, split on ``|`` like the others).
- **IPTC** Keywords (2:25), embedded in a JPEG (Photoshop APP13) or a TIFF: plain keywords,
  UTF-8 when the record says so (1:90) or decodes as such, else Latin-1.

One keyword, not several: a plain keyword naming a node of one of the photo's paths (``Rex``,
``Pets`` or ``Animals`` beside ``Animals|Pets|Rex``: what digiKam and Lightroom write to
``dc:subject`` for the same tag) is that node; the same path from several properties is one
path; a path that is the ancestor of another (``Animals`` beside ``Animals|Pets|Rex``) is implied
by it. darktable's bookkeeping tags (``darktable|format|jpg``, ``darktable|changed``, ...) are
not a person's keywords and are left out. Text is NFC, control characters and runs of spaces
become one space, empty parts are dropped.

XMP is parsed with the standard library's ElementTree (expat): expat 2.4.1 and later refuse the
"billion laughs" and quadratic-blowup entity attacks, and ElementTree never fetches an external
entity or DTD (the Python documentation's table of XML vulnerabilities), so ``defusedxml`` would
add nothing here; a sidecar past ``MAX_SIDECAR_BYTES`` is not read at all. A sidecar that cannot
be read or parsed raises :class:`XmpError` with a short reason (the index keeps it as a note on
the photo); embedded XMP or IPTC that cannot be parsed simply gives no keywords.

:func:`class_names` says which class each keyword becomes (issue 25): its leaf, normalised as
class names are, and where two keywords share a leaf, their paths (``animals/pets/rex``).
"""

from __future__ import annotations

import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from finder.errors import DecodeError, FinderError
from finder.ingest.files import open_regular

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS = {
    "x": "adobe:ns:meta/",
    "rdf": RDF,
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "MicrosoftPhoto": "http://ns.microsoft.com/photo/1.0/",
}
SEP = "|"  # between the parts of a stored keyword path
MAX_SIDECAR_BYTES = 32 * 1024 * 1024  # darktable's histories make sidecars of a few 100 KB
MAX_KEYWORD_CHARS = 1000  # a longer "keyword" is not one a person typed
INTERNAL_ROOTS = frozenset({"darktable"})  # applications' own bookkeeping, not a person's

#: Properties holding keyword paths, with the separator of their parts (Clark notation).
PATH_PROPERTIES: tuple[tuple[str, str], ...] = (
    (f"{{{NS['lr']}}}hierarchicalSubject", "|"),
    (f"{{{NS['lr']}}}HierarchicalSubject", "|"),  # an older spelling digiKam still reads
    (f"{{{NS['digiKam']}}}TagsList", "/"),
    (f"{{{NS['MicrosoftPhoto']}}}LastKeywordXMP", "/"),
    ("{http://ns.microsoft.com/photo/1.0}LastKeywordXMP", "/"),  # ExifTool's namespace URI
)
#: Properties holding plain keywords.
PLAIN_PROPERTIES: tuple[str, ...] = (f"{{{NS['dc']}}}subject",)
_CONTAINERS = frozenset(f"{{{RDF}}}{n}" for n in ("Bag", "Seq", "Alt"))
_LI = f"{{{RDF}}}li"
_SPACES = re.compile(r"\s+")
_BLANKED = frozenset({"Cc", "Cf", "Zl", "Zp"})  # control, format, line and paragraph separators
_IPTC_KEYWORDS, _IPTC_CHARSET = (2, 25), (1, 90)
_UTF8_ESCAPES = (b"\x1b%G", b"\x1b%/I")


class XmpError(FinderError):
    """A sidecar that is not readable XMP; ``str`` is the short reason."""


# -- XMP: the one parser ---------------------------------------------------------------------
def parse_xmp(data: bytes | str, *, comments: bool = False) -> ET.Element:
    """The root element of an XMP packet or sidecar (``comments``: kept in the tree, for
    writing it back). Raises :class:`XmpError` when it is not XML or holds no ``rdf:RDF``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = data.rstrip(b"\x00 \t\r\n")  # embedded packets are padded
    try:
        builder = ET.TreeBuilder(insert_comments=comments)
        root = ET.fromstring(data, parser=ET.XMLParser(target=builder))
    except ET.ParseError as e:
        raise XmpError(f"not valid XML ({e})") from None
    if rdf_root(root) is None:
        raise XmpError("holds no XMP (no rdf:RDF)")
    return root


def rdf_root(root: ET.Element) -> ET.Element | None:
    """The ``rdf:RDF`` element of a parsed packet (the root itself, or under ``x:xmpmeta``)."""
    tag = f"{{{RDF}}}RDF"
    return root if root.tag == tag else root.find(f".//{tag}")


def _values(element: ET.Element) -> list[str]:
    """The texts of a property: the items of its Bag / Seq / Alt, else its own text."""
    container = next((c for c in element if c.tag in _CONTAINERS), None)
    if container is None:
        return [element.text] if element.text and element.text.strip() else []
    out = []
    for li in container.iter(_LI):
        text = li.text if li.text and li.text.strip() else li.get(f"{{{RDF}}}value")
        if text:
            out.append(text)
    return out


def xmp_keywords(data: bytes | str | ET.Element) -> tuple[str, ...]:
    """The keywords an XMP packet holds (see the module docstring), sorted. Raises
    :class:`XmpError` when ``data`` is not XMP."""
    root = data if isinstance(data, ET.Element) else parse_xmp(data)
    return merge_keywords(*_collect(root))


def _collect(root: ET.Element) -> tuple[list[list[str]], list[str]]:
    """The keyword paths (split into parts) and plain keywords of a parsed packet."""
    paths: list[list[str]] = []
    plain: list[str] = []
    for prop, sep in PATH_PROPERTIES:
        for element in root.iter(prop):
            paths += [value.split(sep) for value in _values(element)]
    for prop in PLAIN_PROPERTIES:
        for element in root.iter(prop):
            plain += _values(element)
    return paths, plain


# -- one keyword, not several ----------------------------------------------------------------
def clean_part(text: str) -> str:
    """A keyword's part as kept: NFC, control and format characters and runs of spaces as one
    space, trimmed, and never holding the separator."""
    text = unicodedata.normalize("NFC", str(text)).replace(SEP, " ")
    text = "".join(" " if unicodedata.category(ch) in _BLANKED else ch for ch in text)
    return _SPACES.sub(" ", text).strip()


def path_parts(path: str) -> list[str]:
    """A stored keyword path's parts."""
    return path.split(SEP)


def merge_keywords(paths: Iterable[Sequence[str]], plain: Iterable[str]) -> tuple[str, ...]:
    """One photo's keywords from its keyword paths (each a sequence of parts) and its plain
    keywords (a plain keyword holding ``|`` is a path, as darktable writes them): a plain
    keyword naming a node of a path is that node; ancestors of another path are implied by it;
    darktable's own tags are left out. Sorted, each once."""
    found: dict[str, list[str]] = {}

    def add(parts: Iterable[str]) -> None:
        kept = [p for p in (clean_part(x) for x in parts) if p]
        text = SEP.join(kept)
        if kept and len(text) <= MAX_KEYWORD_CHARS:
            found.setdefault(text, kept)

    flat: list[str] = []
    for parts in paths:
        add(parts)
    for word in plain:
        if SEP in word:
            add(word.split(SEP))
        else:
            flat.append(word)
    nodes = {part.casefold() for parts in found.values() for part in parts}
    for word in flat:
        part = clean_part(word)
        if part and part.casefold() not in nodes:
            add([part])
    kept = {p for p, parts in found.items() if parts[0].casefold() not in INTERNAL_ROOTS}
    implied = {SEP.join(found[p][:k]) for p in kept for k in range(1, len(found[p]))}
    return tuple(sorted(kept - implied))


# -- embedded in the photo -------------------------------------------------------------------
def embedded_keywords(im: Any) -> tuple[str, ...]:
    """The keywords embedded in an image Pillow has opened (its XMP packet and IPTC record,
    from the header: nothing more is read). Never raises: what cannot be parsed gives none."""
    info = getattr(im, "info", {}) or {}
    paths: list[list[str]] = []
    plain: list[str] = []
    packet = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if isinstance(packet, tuple) and len(packet) == 1:  # some TIFF writers
        packet = packet[0]
    if isinstance(packet, (bytes, str)) and packet:
        try:
            root = parse_xmp(packet)
        except XmpError:
            root = None
        if root is not None:
            paths, plain = _collect(root)
    plain += iptc_keywords(im)
    if not paths and not plain:
        return ()
    return merge_keywords(paths, plain)


def iptc_keywords(im: Any) -> list[str]:
    """IPTC Keywords (2:25) of a JPEG or TIFF Pillow has opened; none when absent or bad."""
    if getattr(im, "format", None) not in ("JPEG", "MPO", "TIFF"):
        return []
    try:
        from PIL import IptcImagePlugin

        record = IptcImagePlugin.getiptcinfo(im) or {}
    except Exception:  # a corrupt record: no keywords from it
        return []
    raw = record.get(_IPTC_KEYWORDS)
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    charset = record.get(_IPTC_CHARSET)
    utf8 = isinstance(charset, bytes) and charset in _UTF8_ESCAPES
    out = []
    for value in values:
        if not isinstance(value, bytes):
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("utf-8" if utf8 else "latin-1", "replace")
        out.append(text)
    return out


# -- in the sidecar --------------------------------------------------------------------------
def sidecar_keywords(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The keywords of the sidecar at ``path``. Raises :class:`XmpError` with a short reason
    when it cannot be read or is not XMP; the file is only read."""
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_SIDECAR_BYTES:
                raise XmpError(f"sidecar too large ({size} bytes)")
            data = f.read()
    except DecodeError as e:
        raise XmpError(f"sidecar unreadable ({e})") from None
    except OSError as e:
        raise XmpError(f"sidecar unreadable ({e.strerror or e})") from None
    try:
        return xmp_keywords(data)
    except XmpError as e:
        raise XmpError(f"sidecar {e}") from None


# -- the class a keyword becomes -------------------------------------------------------------
def class_names(
    paths: Iterable[str], normalise: Callable[[str], str], *, nodes: bool = True
) -> dict[str, str]:
    """The class name of each keyword path: its leaf, lower-cased and passed through
    ``normalise`` (``finder.learn.names.class_name``: the store does not reach up into
    ``learn``, so the caller hands it over); where two keywords share that name, their paths
    (``animals/pets/rex``). With ``nodes``, the ancestors of every path (``Animals|Pets``) are
    named too. A keyword ``normalise`` refuses (control characters, too long) gets no name."""
    every = set()
    for path in paths:
        parts = path_parts(path)
        upto = range(1, len(parts) + 1) if nodes else (len(parts),)
        every.update(SEP.join(parts[:k]) for k in upto)

    def named(text: str) -> str | None:
        try:
            return normalise(text.lower())
        except (FinderError, ValueError):
            return None

    by_leaf: dict[str, list[str]] = {}
    for path in sorted(every):
        leaf = named(path_parts(path)[-1])
        if leaf is not None:
            by_leaf.setdefault(leaf, []).append(path)
    out: dict[str, str] = {}
    for leaf, shared in by_leaf.items():
        for path in shared:
            name = leaf if len(shared) == 1 else named("/".join(path_parts(path)))
            if name is not None:
                out[path] = name
    return out


def keyword_classes(names: Mapping[str, str]) -> dict[str, list[str]]:
    """``class_names``'s answer turned around: each class name with its keyword paths (two
    paths differing only in case share a name)."""
    out: dict[str, list[str]] = {}
    for path, name in sorted(names.items()):
        out.setdefault(name, []).append(path)
    return out
