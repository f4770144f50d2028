"""Class names: one normalisation for every command, so that ``learn " dog "`` and
``find dog`` (or ``forget "dog "``) name the same class.

A name is NFC-normalised, trimmed, and its runs of spaces become one. Names holding control or
format characters (tabs, newlines, escape codes, bidirectional overrides, ...) are refused:
printed, they would rewrite a person's terminal or hide what a class is called.
"""

from __future__ import annotations

import unicodedata

from finder.errors import UsageError

#: Longest class name accepted, in characters.
MAX_LENGTH = 200
# Unicode categories refused: control, format (bidi overrides, zero-width), surrogates,
# private use, unassigned, line and paragraph separators.
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def class_name(text: str) -> str:
    """``text`` as a class name, or a one-line ``UsageError`` saying why it cannot be one."""
    name = unicodedata.normalize("NFC", str(text))
    bad = next((ch for ch in name if unicodedata.category(ch) in _REFUSED), None)
    if bad is not None:
        raise UsageError(f"a class name cannot hold control characters (U+{ord(bad):04X})")
    name = " ".join(name.split())
    if not name:
        raise UsageError("a class needs a name")
    if len(name) > MAX_LENGTH:
        raise UsageError(f"a class name is at most {MAX_LENGTH} characters")
    return name
