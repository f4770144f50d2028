"""What a search index tier is (see :mod:`finder.store.tiers`): the :class:`Tier` protocol, the
:class:`Plan` of one not built yet, the :class:`TierOptions` a store lets it choose, how it
reads raw vectors (:data:`Scan`) and how it says a saved index is unusable
(:class:`TierDamaged`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

# (rows, float16 vectors) in chunks, for the rows asked for: how a tier reads raw vectors.
Scan = Callable[[np.ndarray], Iterator[tuple[np.ndarray, np.ndarray]]]


class TierDamaged(ValueError):
    """A saved index is missing, damaged or of another shape: rebuild it from the raw vectors."""


@dataclass
class TierOptions:
    """What the store lets a tier choose: ``memory_budget`` (bytes) bounds the in-memory index;
    ``flat_max`` is the largest library kept flat; ``retrain_factor``: retrain an IVF index when
    the library outgrows its training size by this factor; ``pca_dim``, ``nlist``, ``nprobe``
    override the IVF sizes; ``rescore``: at least this many candidates (and 10 per result) are
    rescored exactly per query; ``kmeans_iter``: k-means iterations when training lists.
    The store and its tiers share one instance: ``rescore`` may be changed at any time."""

    memory_budget: int | None = None
    flat_max: int = 10_000
    retrain_factor: float = 2.0
    pca_dim: int | None = None
    nlist: int | None = None
    nprobe: int | None = None
    rescore: int = 256
    kmeans_iter: int = 10


class Plan(Protocol):
    """A tier chosen for a library size, not built yet."""

    tier: ClassVar[type[Tier]]

    def name(self) -> str:
        """The name the built tier will report."""
        ...

    def build(self, rows: np.ndarray, scan: Scan) -> Tier:
        """An empty tier, trained (if it needs training) on the raw vectors of ``rows``."""
        ...


class Tier(Protocol):
    """An in-memory search index over (id, unit vector) pairs."""

    kind: ClassVar[str]  # recorded in index.json; :func:`by_kind` finds the class again
    persistent: ClassVar[bool]  # saved to files (else rebuilt from the raw vectors at open)

    def name(self) -> str:
        """A short description for ``status`` (e.g. ``flat (exact)``)."""
        ...

    @property
    def ntotal(self) -> int:
        """How many vectors it holds."""
        ...

    def nbytes(self) -> int:
        """Memory it holds, in bytes."""
        ...

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        """Add float32 unit rows under these ids (the ids are not present)."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Drop these ids; unknown ids are ignored."""
        ...

    def reset(self) -> None:
        """Drop every vector, keep what was trained."""
        ...

    def knn(
        self, q: np.ndarray, k: int, *, head: bool = False, within: np.ndarray | None = None
    ) -> np.ndarray:
        """Candidate ids for the k best inner products with q (the store rescores them).
        ``head``: q is a classifier's weight vector rather than a photo's vector. ``within``:
        only these ids may be offered (a filtered search), searched as thoroughly as the
        whole library would be."""
        ...

    def pool(self, k: int, *, head: bool = False) -> int:
        """How many vectors a top-k query scores: the candidates :meth:`knn` offers (every
        vector for an exact tier). A filtered search scores the photos that pass one by one
        when they are no more than this."""
        ...

    def above(self, w: np.ndarray, threshold: float) -> np.ndarray:
        """Every id whose exact ``w.x`` can reach ``threshold`` (a superset, never missing one)."""
        ...

    def serves(self, plan: Plan, n: int) -> bool:
        """Whether this index may keep serving a library of n vectors for which :func:`plan`
        chose ``plan`` (else it is rebuilt)."""
        ...

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        """Write the index to files named ``stem.*`` in ``directory`` (durably) and return what
        :meth:`load` needs to find and check them (stored in index.json)."""
        ...

    @classmethod
    def load(
        cls, directory: Path, meta: dict[str, Any], dim: int, options: TierOptions
    ) -> Tier | None:
        """The index saved by :meth:`save` (``meta`` is what it returned), or None when nothing
        is saved for this tier. Raises :class:`TierDamaged` (or OSError, KeyError, ...) when the
        files are missing or damaged."""
        ...

    @classmethod
    def plan(cls, n: int, dim: int, options: TierOptions) -> Plan | None:
        """This tier for n vectors of dimension dim, or None when it does not fit."""
        ...
