"""Many classes taught at once (``Teaching.apply_all``, what a filing of many keywords runs):
trained on several threads, written in order, the same heads as one at a time; a class that
cannot be taught stops the run after those before it are written. A real backbone, SQLite,
FAISS (the ``filed`` library of tests/test_filing.py)."""

from __future__ import annotations

import numpy as np
import pytest

from finder.errors import UsageError
from finder.learn.head import Head
from finder.library import Library
from finder.teach import Change, Mark
from tests.test_filing import filed, kind  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("filed")


def _changes(lib: Library, prefix: str) -> list[Change]:
    rows = sorted(
        lib.folder.open_catalog().paths_for(list(map(int, lib.folder.open_vectors().ids()))).items()
    )
    by_kind: dict[str, list[tuple[int, str]]] = {}
    for i, path in rows:
        by_kind.setdefault(kind(path), []).append((i, path))
    out = []
    for k, (mine, other) in enumerate([("r", "b"), ("b", "g"), ("g", "r"), ("r", "g")]):
        marks = [Mark(i, p, 1) for i, p in by_kind[mine][k % 2 : k % 2 + 3]]
        marks += [Mark(i, p, 0) for i, p in by_kind[other][:2]]
        out.append(Change(f"{prefix}{k}", tuple(marks), seed=k))
    return out


def _head(lib: Library, name: str) -> Head:
    return lib.teaching.head(name)


def test_classes_taught_at_once_are_the_classes_taught_one_by_one(filed) -> None:  # noqa: F811
    cli, _ = filed
    with Library(cli.library) as lib:
        together = lib.teaching.apply_all(_changes(lib, "together"), workers=2)
        alone = [lib.teaching.apply(c) for c in _changes(lib, "alone")]
        assert [r["name"] for r in together] == [f"together{k}" for k in range(4)]
        assert [r["n_pos"] for r in together] == [r["n_pos"] for r in alone]
        X = lib.folder.open_vectors().get(lib.folder.open_vectors().ids())
        for k in range(4):
            a, b = _head(lib, f"together{k}"), _head(lib, f"alone{k}")
            np.testing.assert_allclose(a.logits(X), b.logits(X), atol=1e-3)
            assert abs(a.threshold - b.threshold) < 1e-3
            assert len(lib.marks(f"together{k}")) == 5


def test_a_class_that_cannot_be_taught_stops_the_run_after_those_before_it(filed) -> None:  # noqa: F811
    cli, _ = filed
    with Library(cli.library) as lib:
        changes = _changes(lib, "c")
        only_negatives = Change("empty", tuple(m for m in changes[1].marks if m.label == 0))
        with pytest.raises(UsageError, match="needs at least one example"):
            lib.teaching.apply_all([changes[0], only_negatives, changes[2]], workers=2)
        names = {c["name"] for c in lib.classes()}
        assert "c0" in names and "empty" not in names and "c2" not in names
        with pytest.raises(UsageError):
            lib.teaching.apply_all([Change("c0", forget=True)])
