"""JSON as finder prints it (``--json``) and serves it (the web API): every string in it valid
UTF-8, so that any strict parser reads it, and every path exact.

A path is a ``str`` made by ``os.fsdecode``: the bytes of a name that is not UTF-8 are lone
surrogates in it, which ``json.dumps`` writes as ``\\udcff`` escapes that strict parsers (and
UTF-8 itself) reject. Here such a string is written as the page shows it, each byte that is not
UTF-8 as ``\\xff`` (a person reads it; it names no file); and where it is the value of a field
(``"path"``), the field's exact bytes come beside it, base64, as ``FIELD_bytes``
(``"path_bytes"``), from which ``base64.b64decode`` gives the name the file system has. A name
that is UTF-8 is written as it is, without ``_bytes``. Every JSON output goes through
:func:`dumps`, whatever its shape: rows of matches, dupes' groups, failures, sidecars, the API.
"""

from __future__ import annotations

import base64
import json
from typing import Any

BYTES = "_bytes"
"""The suffix of the field that holds the exact bytes of a field that is not UTF-8."""


def dumps(data: Any, **options: Any) -> str:
    """``json.dumps(data, **options)`` with every string valid UTF-8 (see the module)."""
    return json.dumps(safe(data), **options)


def safe(value: Any) -> Any:
    """``value`` (dicts, lists, strings, numbers) with each string that is not UTF-8 shown,
    and a dict's such field joined by its exact bytes (``FIELD_bytes``)."""
    if isinstance(value, str):
        return value if _is_utf8(value) else shown(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = key if not isinstance(key, str) or _is_utf8(key) else shown(key)
            if isinstance(item, str) and not _is_utf8(item):
                out[name] = shown(item)
                if isinstance(key, str):
                    out[name + BYTES] = exact(item)
            else:
                out[name] = safe(item)
        return out
    if isinstance(value, (list, tuple)):
        return [safe(item) for item in value]
    return value


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of a name that is not UTF-8
        return False
    return True


def _raw(text: str) -> bytes | None:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name makes
        return None


def shown(text: str) -> str:
    """``text`` as valid UTF-8: each byte of the name that is not UTF-8 as ``\\xff``."""
    raw = _raw(text)
    if raw is None:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def exact(text: str) -> str:
    """The bytes of the name ``text`` (``os.fsencode``), base64."""
    raw = _raw(text)
    if raw is None:
        raw = text.encode("utf-8", "surrogatepass")
    return base64.b64encode(raw).decode("ascii")
