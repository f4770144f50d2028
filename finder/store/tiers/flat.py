"""The flat tier: every vector in fp16 in a FAISS scalar-quantizer index, exact, 2*D bytes a
vector. Used while the library is small (``flat_max``) and fits the memory budget; nothing is
saved, it is rebuilt from the raw vectors at open."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from finder.store.tiers.protocol import Plan, Scan, TierOptions

NAME = "flat (exact)"
# A library this small is searched exactly whatever the memory budget: its flat index takes at
# most EXACT_BELOW * (2 D + 8) bytes (16 MB at D = 4096), and an IVF index over so few vectors
# (a handful per list) would miss true neighbours.
EXACT_BELOW = 2048


class FlatTier:
    """Every vector in fp16: exact inner products (the raw store holds fp16 too)."""

    kind: ClassVar[str] = "flat"
    persistent: ClassVar[bool] = False

    def __init__(self, dim: int) -> None:
        self.dim = dim
        sq = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        self._sq = sq
        self.index = faiss.IndexIDMap(sq)

    @classmethod
    def plan(cls, n: int, dim: int, options: TierOptions) -> FlatPlan | None:
        budget = options.memory_budget
        fits = budget is None or n * (2 * dim + 8) <= budget or n < EXACT_BELOW
        if n <= options.flat_max and fits:
            return FlatPlan(dim)
        return None

    @classmethod
    def load(
        cls, directory: Path, meta: dict[str, Any], dim: int, options: TierOptions
    ) -> FlatTier | None:
        return None  # built from the raw vectors on first use

    def name(self) -> str:
        return NAME

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def nbytes(self) -> int:
        return self.ntotal * (2 * self.dim + 8)

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(x, dtype=np.float32), ids)

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) and self.ntotal:
            self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))

    def reset(self) -> None:
        self.index.reset()

    def pool(self, k: int, *, head: bool = False) -> int:
        return self.ntotal  # every vector is scored

    def knn(
        self, q: np.ndarray, k: int, *, head: bool = False, within: np.ndarray | None = None
    ) -> np.ndarray:
        k = min(k, self.ntotal)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        params = None
        if within is not None:
            selector = faiss.IDSelectorBatch(np.asarray(within, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
        _, labels = self.index.search(q.reshape(1, -1).astype(np.float32), k, params=params)
        return labels[0][labels[0] >= 0]

    def above(self, w: np.ndarray, threshold: float) -> np.ndarray:
        if not self.ntotal:
            return np.zeros(0, dtype=np.int64)
        margin = 1e-3 * float(np.linalg.norm(w)) + 1e-6
        _, _, labels = self.index.range_search(
            w.reshape(1, -1).astype(np.float32), float(threshold - margin)
        )
        return labels

    def serves(self, plan: Plan, n: int) -> bool:
        return plan.tier is FlatTier

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class FlatPlan:
    tier: ClassVar[type[FlatTier]] = FlatTier
    dim: int

    def name(self) -> str:
        return NAME

    def build(self, rows: np.ndarray, scan: Scan) -> FlatTier:
        return FlatTier(self.dim)
