"""Backbone identity: what a library records about the backbone that made its vectors
(:class:`BackboneInfo`), which backbones may share a library (:func:`identity_key`,
:func:`same_as`), how a backbone is named to a person (:func:`describe`), what a person asked for
(:class:`BackboneChoice`) and the refusal of a choice other than a library's recorded one
(:func:`check_choice`). Plain data: no TensorFlow (the registry of backbones that builds them is
``finder.embed.registry``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from finder.embed.runtime import AUTO, FLOAT32, PRECISIONS
from finder.errors import Arg, BackboneError, BackboneMismatch, UsageError, WeightsUnavailable

# Model file endings → the registry entry that loads them.
MODEL_FILES: dict[tuple[str, ...], str] = {
    (".tflite",): "tflite",
    (".keras", ".h5", ".hdf5"): "keras-file",
}


@dataclass(frozen=True)
class BackboneInfo:
    """What a library records about the backbone that made its vectors."""

    name: str
    layer: str | None
    dim: int
    weights: str  # "imagenet", "none", or an absolute file path
    fingerprint: str
    input_size: tuple[int, int]  # (width, height)
    views: int = 1  # test-time views averaged into one vector (finder.decode.load_views)
    precision: str = FLOAT32  # compute precision: "float32" or "bfloat16" (finder.embed.runtime)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneInfo:
        try:
            w, h = d["input_size"]
            return cls(
                name=str(d["name"]),
                layer=None if d.get("layer") is None else str(d["layer"]),
                dim=int(d["dim"]),
                weights=str(d["weights"]),
                fingerprint=str(d["fingerprint"]),
                input_size=(int(w), int(h)),
                views=int(d.get("views", 1)),
                precision=_recorded_precision(d),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BackboneError(f"bad backbone record {d!r}: {e}") from None

    def same_as(self, other: BackboneInfo | Mapping[str, Any]) -> bool:
        """True when vectors from ``self`` and ``other`` may be mixed."""
        return identity_key(self) == identity_key(other)

    def describe(self) -> str:
        return describe(self)


# ----------------------------------------------------------------------------------------------
# Identity: one key, one description, one check of a choice against a record

Record = BackboneInfo | Mapping[str, Any]


def _fields(info: Record) -> Mapping[str, Any]:
    return info.to_dict() if isinstance(info, BackboneInfo) else info


def _recorded_precision(d: Mapping[str, Any]) -> str:
    """A record's precision; records made before precisions were recorded mean float32."""
    precision = str(d.get("precision") or FLOAT32)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    return precision


def identity_key(info: Record) -> str:
    """The string that says which vectors may be mixed (stored with each learned class)."""
    d = _fields(info)
    views = int(d.get("views", 1))
    extra = f":views{views}" if views != 1 else ""
    precision = _recorded_precision(d)
    if precision != FLOAT32:
        extra += f":{precision}"
    return f"{d['name']}:{d.get('layer')}:{d['dim']}:{d['fingerprint']}{extra}"


def same_as(a: Record, b: Record) -> bool:
    """True when vectors of the backbones ``a`` and ``b`` may share a library."""
    return identity_key(a) == identity_key(b)


def describe(info: Record | None) -> str:
    """A backbone as a person reads it, e.g. ``vgg16 fc1 4096-d`` (``finder status``)."""
    if not info:
        return "none yet"
    d = _fields(info)
    parts = [d["name"]]
    if d.get("layer"):
        parts.append(d["layer"])
    parts.append(f"{d['dim']}-d")
    if int(d.get("views", 1)) != 1:
        parts.append(f"{d['views']} views")
    weights = d.get("weights")
    if weights and weights not in ("imagenet",):
        parts.append(f"weights {weights}")
    return " ".join(parts)


def model_kind(model: str | os.PathLike) -> str:
    """The registry entry that loads a model file, by its ending."""
    path = os.fsdecode(model)
    low = path.lower()
    for endings, kind in MODEL_FILES.items():
        if low.endswith(endings):
            return kind
    known = ", ".join(e for endings in MODEL_FILES for e in endings)
    raise BackboneError(f"unknown model file type: {path} (expected one of {known})")


@dataclass(frozen=True)
class BackboneChoice:
    """What a person asked for; ``None`` everywhere means "the library's, else the default"."""

    name: str | None = None
    weights: str | None = None  # "imagenet", "none" or a file
    model: str | None = None  # a .tflite / .keras / .h5 file
    layer: str | None = None
    views: int | None = None  # test-time views an image (1, 2 or 4); see finder.decode
    precision: str | None = None  # "auto", "float32" or "bfloat16"; see finder.embed.runtime

    @property
    def given(self) -> bool:
        fields = (self.name, self.weights, self.model, self.layer, self.views, self.precision)
        return any(v is not None for v in fields)


def check_precision(precision: str | None, field: str = "precision") -> str:
    """A precision a person may ask for (``None`` is ``auto``); a one-line error about the
    argument ``field`` otherwise."""
    if precision is None:
        return AUTO
    if precision not in (AUTO, *PRECISIONS):
        raise UsageError(
            Arg(field), f" must be one of {AUTO}, {', '.join(PRECISIONS)}; not {precision!r}"
        )
    return precision


def check_choice(choice: BackboneChoice, recorded: Record, library: str) -> None:
    """Refuse a backbone other than the one ``library`` recorded, without building anything."""
    if not choice.given:
        return
    d = _fields(recorded)
    want = model_kind(choice.model) if choice.model else choice.name
    mismatch = (want is not None and want != d["name"]) or (
        choice.layer is not None and choice.layer != d.get("layer")
    )
    if choice.model and not mismatch:  # a model file is recorded as the backbone's weights
        mismatch = os.path.abspath(choice.model) != d.get("weights")
    if mismatch:
        raise BackboneMismatch(
            f"the library {library} was indexed with {describe(d)}; "
            "it cannot mix in vectors of another backbone (use another ",
            Arg("library"),
            ")",
        )
    views = int(d.get("views", 1))
    if choice.views is not None and choice.views != views:
        raise BackboneMismatch(
            f"the library {library} was indexed with {_views(views)} an image; it cannot mix "
            f"in vectors of {_views(choice.views)} (leave out ",
            Arg("views"),
            ", or use another ",
            Arg("library"),
            ")",
        )
    want = check_precision(choice.precision)
    if want != AUTO and want != _recorded_precision(d):
        raise BackboneMismatch(
            f"the library {library} was indexed in {_recorded_precision(d)}; it cannot mix in "
            f"{want} vectors (leave out ",
            Arg("precision"),
            ", or use another ",
            Arg("library"),
            ")",
        )


def _views(n: int) -> str:
    return f"{n} view{'' if n == 1 else 's'}"


_fingerprints: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str) -> str:
    """First 16 hex digits of the sha256 of a file (cached per path, size and mtime)."""
    h = hashlib.sha256()
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if key in _fingerprints:
            return _fingerprints[key]
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise WeightsUnavailable(f"cannot read {path}: {e.strerror or e}") from None
    _fingerprints[key] = h.hexdigest()[:16]
    return _fingerprints[key]


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (for a one-line error of our own)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
