"""Search index tiers: one written-down interface, and :func:`plan` to pick one.

A tier holds the library's vectors (or codes of them) in memory and answers two questions with
ids only: the candidates for the top k of a query (:meth:`Tier.knn`) and every id whose exact
score can reach a threshold (:meth:`Tier.above`, a superset, never missing one). The store
rescores every candidate exactly from the raw vectors, so a tier may be approximate in *which*
ids it offers for the top k, never in the scores.

Tiers (after autofaiss's ``get_optimal_index_keys_v2``: exact while small, then an IVF index
sized to the budget):

* :mod:`~finder.store.tiers.flat`: every vector in fp16, exact.
* :mod:`~finder.store.tiers.ivf`: PCA coordinates plus two bound coordinates, 8-bit, in an IVF
  index; retrained when the library has grown ``retrain_factor`` times since training.

The interface (:class:`Tier`, :class:`Plan`, :class:`TierOptions`, ...) is in
:mod:`~finder.store.tiers.protocol`, which the tiers import; this package names the tiers.
To add a tier: write one module with a class following :class:`Tier` (with ``plan`` and
``load`` class methods) and name it in :data:`TIERS`, in the order :func:`plan` tries it.
"""

from __future__ import annotations

from finder.store.tiers.flat import FlatTier
from finder.store.tiers.ivf import IvfTier
from finder.store.tiers.protocol import Plan, Scan, Tier, TierDamaged, TierOptions

TIERS: tuple[type[Tier], ...] = (FlatTier, IvfTier)
"""The tiers in the order :func:`plan` tries them: the first that fits a library is used."""


def plan(n: int, dim: int, options: TierOptions) -> Plan:
    """The tier for a library of n vectors of dimension dim under ``options``."""
    for tier in TIERS:
        chosen = tier.plan(n, dim, options)
        if chosen is not None:
            return chosen
    raise AssertionError("the last tier fits every library")


def by_kind(kind: object) -> type[Tier]:
    """The tier class that saved an index of this kind."""
    for tier in TIERS:
        if tier.kind == kind:
            return tier
    raise TierDamaged(f"unknown index tier {kind!r}")


__all__ = ["TIERS", "Plan", "Scan", "Tier", "TierDamaged", "TierOptions", "by_kind", "plan"]
