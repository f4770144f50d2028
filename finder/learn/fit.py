"""One class's learning problem and the fitting primitives of :mod:`finder.learn.train`.

A :class:`Problem` is what a head is learned from: examples ``P``, explicit negatives ``N``
and the background ``B`` (in the library's metric when there is one), held as one matrix of
rows that every fit weighs differently (a row left out weighs 0): the logistic fits
(:func:`fit_logistic`, balanced by :meth:`Problem.fit_rows`), the k-NN diffusion that orders the
background (:func:`knn_diffusion`, its graph from :mod:`finder.learn.background`), the examples'
held-out ranks and the marks' cross-validated logits. :mod:`finder.learn.train` is the recipe
that puts them together.

This module imports numpy and scipy only (never TensorFlow).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy
from scipy.optimize import minimize

from finder.errors import UsageError
from finder.learn.background import Prepared, graph_neighbours, unit_rows
from finder.learn.coords import Coords, other_coordinates
from finder.learn.head import sigmoid
from finder.learn.metric import Metric

if TYPE_CHECKING:
    from finder.learn.train import HeadConfig

EXPLICIT_NEGATIVE_WEIGHT: float = 3.0
"""An explicit negative (the user said so) weighs this many times a background vector."""


FIT_OPTIONS: dict[str, float] = {"maxiter": 300, "gtol": 1e-5, "ftol": 1e-7}
"""L-BFGS-B's stopping rule for :func:`fit_logistic`: the loss is summed from float32 logits,
so it is known to about 1e-7 of itself; asking the fit to stop only at a gradient of 1e-5 (the
rule before) left its line search chasing rounding noise (half the evaluations of a filed
head, many ending "ABNORMAL"). Stopping once an iteration gains less than ``ftol`` of the loss
changes the logits by about 0.002 and takes 2-3x fewer evaluations (docs/heads.md, speed)."""


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray,
    C: float = 1.0,
    *,
    init: tuple[np.ndarray, float] | None = None,
) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression (sklearn's convention: ``C·Σ sᵢ·loss + ½‖w‖²``).

    ``y`` in {0, 1} (or soft labels in [0, 1]); the intercept is not penalised; ``init`` warm
    starts. Returns ``(w float32, b)``.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(sample_weight, dtype=np.float64) * C
    d = X.shape[1]

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = (X @ w.astype(np.float32)).astype(np.float64) + b
        loss = np.logaddexp(0.0, z) - y * z
        r = s * (sigmoid(z) - y)
        g = np.empty(d + 1)
        g[:d] = (r.astype(np.float32) @ X).astype(np.float64) + w
        g[d] = r.sum()
        return float(s @ loss) + 0.5 * float(w @ w), g

    theta0 = np.zeros(d + 1)
    if init is not None:
        theta0[:d], theta0[d] = init
    res = minimize(fg, theta0, jac=True, method="L-BFGS-B", options=FIT_OPTIONS)
    return res.x[:d].astype(np.float32), float(res.x[d])


THREADED: bool = tuple(int(v) for v in scipy.__version__.split(".")[:2]) >= (1, 15)
"""Whether several fits may run at once in threads (:func:`fit_logistic_many`): SciPy's
L-BFGS-B keeps all its state in its arguments from 1.15 (its C translation)."""


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def fit_logistic_many(
    X: np.ndarray,
    fits: list[tuple[np.ndarray, np.ndarray]],
    C: float = 1.0,
    *,
    init: tuple[np.ndarray, float] | None = None,
) -> list[tuple[np.ndarray, float]]:
    """:func:`fit_logistic` of the same rows ``X`` under several ``(y, sample_weight)`` (the
    folds of a cross-validation), all from ``init``, on every core this process may use: each
    fit in a thread of its own (their products release the GIL), the very fits made one after
    another, sooner (a strip's retraining at 4,096-d spends most of its time in its folds)."""
    workers = min(len(fits), cpu_count())
    if workers < 2 or not THREADED:
        return [fit_logistic(X, y, sw, C, init=init) for y, sw in fits]
    X = np.ascontiguousarray(X, dtype=np.float32)
    with ThreadPoolExecutor(workers, thread_name_prefix="finder-fit") as pool:
        return list(pool.map(lambda f: fit_logistic(X, f[0], f[1], C, init=init), fits))


class Soon:
    """A fit started in a thread of its own (:meth:`Problem.fit_pseudo_soon`) while the caller
    goes on with another that does not need it; :meth:`result` waits for it. Made at once, in
    the caller's thread, when this process may use one core only or SciPy's L-BFGS-B is not
    thread-safe: the same fit either way."""

    def __init__(self, fn: Callable[[], tuple[np.ndarray, float]]) -> None:
        self._value: tuple[np.ndarray, float] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if cpu_count() < 2 or not THREADED:
            self._value = fn()
            return

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as e:  # raised in the caller's thread by result()
                self._error = e

        self._thread = threading.Thread(target=run, name="finder-fit-soon", daemon=True)
        self._thread.start()

    def result(self) -> tuple[np.ndarray, float]:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def fit_weighted(
    P: np.ndarray,
    pos_weight: np.ndarray,
    Neg: np.ndarray,
    neg_weight: np.ndarray,
    C: float,
    init: tuple[np.ndarray, float] | None = None,
    balanced: bool = True,
) -> tuple[np.ndarray, float]:
    """Balanced fit: positives and negatives each carry half the total weight (else every
    vector its own weight)."""
    n = len(P) + len(Neg)
    if balanced:
        pos_weight = pos_weight / pos_weight.sum() * 0.5 * n
        neg_weight = neg_weight / neg_weight.sum() * 0.5 * n
    sw = np.concatenate([pos_weight, neg_weight])
    y = np.concatenate([np.ones(len(P)), np.zeros(len(Neg))])
    return fit_logistic(np.concatenate([P, Neg]), y, sw, C, init=init)


def knn_diffusion(
    V: np.ndarray,
    seeds: np.ndarray,
    *,
    k: int = 5,
    alpha: float = 0.8,
    gamma: float = 3.0,
    against: np.ndarray | None = None,
    known: tuple[np.ndarray, ...] | None = None,
) -> np.ndarray:
    """Scores of the rows of ``V`` (unit vectors) after diffusing from ``seeds`` over their
    k-nearest-neighbour graph: ``f = (I - αS)⁻¹ y`` with ``S`` the symmetrically normalised
    affinity ``max(0, cos)^γ`` (Zhou et al. 2004; Iscen et al. 2017). Training-time only.
    ``against``: rows whose own diffusion is subtracted (``y`` is -1 there; one solve, the
    diffusion being linear in ``y``). ``known``: some rows' neighbours among themselves
    (:func:`finder.learn.background.graph_neighbours`), computed once per library."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg

    n = len(V)
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n)
    nbr, sims = graph_neighbours(V, k, known)
    rows = np.repeat(np.arange(n), k)
    vals = np.maximum(sims.ravel(), 0.0).astype(np.float64) ** gamma
    W = sp.csr_matrix((vals, (rows, nbr.ravel())), shape=(n, n))
    W = W + W.T
    deg = np.asarray(W.sum(axis=1)).ravel()
    deg[deg == 0] = 1.0
    Dm = sp.diags(deg**-0.5)
    y = np.zeros(n)
    y[seeds] = 1.0
    if against is not None:
        y[against] -= 1.0
    f, _ = cg(sp.eye(n) - alpha * (Dm @ W @ Dm), y, rtol=1e-6, maxiter=100)
    return f


def _coordinates(marks: np.ndarray, prepared: Prepared, k: int) -> tuple[np.ndarray, Coords]:
    """A problem's rows as coordinates (:mod:`finder.learn.coords`): ``marks`` its examples'
    and negatives' rows in the metric, its background ``prepared``'s, of which the candidates
    need the first ``k`` vectors of the pool's basis. Returns ``(rows, coords)``."""
    Q, Rt = prepared.pool.basis()
    ranks = prepared.ranks
    inside = ranks < prepared.pool.in_basis
    outside = np.flatnonzero(~inside)
    others = marks
    if len(outside):  # background photos past the basis's: put in it as the marks are
        others = np.concatenate([marks, prepared.background_rows(outside)])
    C, made = other_coordinates(others, Q[:, :k])
    pq = len(marks)
    Z = np.zeros((pq + len(ranks), made.width), dtype=np.float32)
    Z[:pq] = C[:pq]
    Z[pq + np.flatnonzero(inside), :k] = Rt[ranks[inside], :k]
    if len(outside):
        Z[pq + outside] = C[pq:]
    return Z, made


def check_vectors(name: str, A: np.ndarray, dim: int | None) -> np.ndarray:
    """``A`` as a finite float32 ``[n, dim]`` array, or a UsageError naming ``name``."""
    A = np.asarray(A, dtype=np.float32)
    if A.size == 0:
        return np.zeros(
            (0, dim if dim is not None else (A.shape[-1] if A.ndim == 2 else 0)), dtype=np.float32
        )
    if A.ndim == 1 and dim is None:
        A = A.reshape(1, -1)
    if A.ndim != 2:
        raise UsageError(f"{name} must be a 2-d array of vectors, got shape {A.shape}")
    if dim is not None and A.shape[1] != dim:
        raise UsageError(f"{name} have dimension {A.shape[1]}, the examples have {dim}")
    if not np.isfinite(A.sum()) and not np.all(np.isfinite(A)):  # a sum: no copy of A
        raise UsageError(f"{name} contain non-finite values")
    return A


@dataclass
class Problem:
    """One class to learn: examples ``P``, explicit negatives ``N``, background ``B``."""

    P: np.ndarray
    N: np.ndarray
    B: np.ndarray
    G: np.ndarray | None = None  # the rows of the k-NN graph (P, N, B as stored); None: P, N, B
    known: tuple[np.ndarray, ...] | None = None  # some rows' neighbours in G, computed before
    Z: np.ndarray | None = None  # P, N, B as one matrix: every fit's rows (0 weight: left out)
    coords: Coords | None = None  # P, N, B are coordinates in this basis of the metric's span
    # (finder.learn.coords; None: the metric's own)

    @classmethod
    def checked(cls, positives: np.ndarray, negatives: np.ndarray, background: np.ndarray):
        P = check_vectors("examples", positives, None)
        if P.shape[0] == 0:
            raise UsageError("a class needs at least one example")
        d = P.shape[1]
        N = check_vectors("negatives", negatives, d)
        B = check_vectors("background vectors", background, d)
        if len(N) + len(B) == 0:
            raise UsageError("a class needs negatives or a background sample to learn from")
        return cls(P, N, B)

    def in_metric(
        self,
        metric: Metric,
        graph: str,
        prepared: Prepared | None = None,
        k: int = 5,
        coords: float = 0.0,
    ) -> Problem:
        """The same problem in the library's metric (:mod:`finder.learn.metric`: the vectors as
        ``Metric.apply`` gives them); the k-NN graph stays on the stored unit vectors unless
        ``graph == "metric"``. ``prepared``: the background in the metric and its neighbours,
        computed once for the library (:mod:`finder.learn.background`). ``coords``: the rows
        as coordinates in an orthonormal basis of their span (:mod:`finder.learn.coords`;
        :meth:`to_metric` maps weights back) when the pool has one and it is at most this share
        of the dimension wide (0: never)."""
        p, q, n = len(self.P), len(self.N), len(self.P) + len(self.N) + len(self.B)
        known_rows = prepared is not None and prepared.in_metric
        c = 0
        basis = None
        if known_rows:  # the pool's rows put straight where they go: no copy in between
            assert prepared is not None
            c = len(prepared.counter) if len(prepared.counter) <= q else 0  # the last negatives
            basis = self._basis_width(prepared, coords)
            Y = np.empty((n if basis is None else p + q, self.P.shape[1]), dtype=np.float32)
            Y[: p + q - c] = metric.apply(np.concatenate([self.P, self.N[: q - c]]))
            if c:
                prepared.counter_rows(out=Y[p + q - c : p + q])
            if basis is None:
                prepared.metric_rows(out=Y[p + q :])
        else:
            Y = metric.apply(np.concatenate([self.P, self.N, self.B]))
        if graph == "metric" and known_rows:
            assert prepared is not None
            G = np.empty((n, Y.shape[1]), dtype=np.float32)
            G[: p + q - c] = unit_rows(Y[: p + q - c])  # the rest as the pool made them
            prepared.unit_rows(c, out=G[p + q - c :])
        elif graph == "metric":
            G = unit_rows(Y)
        else:
            G = np.concatenate([self.P, self.N, self.B])
        known = None
        if prepared is not None:
            got = prepared.neighbours(graph, k, counter=c > 0)
            if got is not None:  # the rows they are: the counter-examples', the background's
                known = (np.arange(p + q - c, n), *got)
        if basis is not None:
            assert prepared is not None
            Z, made = _coordinates(Y, prepared, basis)
            return Problem(Z[:p], Z[p : p + q], Z[p + q :], G, known, Z, made)
        return Problem(Y[:p], Y[p : p + q], Y[p + q :], G, known, Y)

    def _basis_width(self, prepared: Prepared, share: float) -> int | None:
        """How many of the pool's basis vectors the background needs, when the coordinates
        (those and the marks') would be at most ``share`` of the dimension; else None."""
        if share <= 0 or not len(self.B):
            return None
        d = self.P.shape[1]
        inside = prepared.ranks < prepared.pool.in_basis
        k = min(int(prepared.ranks[inside].max()) + 1 if inside.any() else 0, d)
        other = len(self.P) + len(self.N) + int((~inside).sum())
        return k if k + other <= share * d else None

    def to_metric(self, w: np.ndarray) -> np.ndarray:
        """Weights on this problem's rows as weights in the metric (the same without
        coordinates)."""
        return w if self.coords is None else self.coords.to_metric(w)

    def negatives(self, rest: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Explicit negatives + the background rows ``rest`` (all when None), and weights."""
        R = self.B if rest is None else self.B[rest]
        w = np.concatenate([np.full(len(self.N), EXPLICIT_NEGATIVE_WEIGHT), np.ones(len(R))])
        return np.concatenate([self.N, R]), w

    def rows(self) -> np.ndarray:
        """``P``, ``N``, ``B`` as one matrix, the rows of every fit (made once)."""
        if self.Z is None:
            self.Z = np.concatenate([self.P, self.N, self.B])
        return self.Z

    def fit_rows(
        self, y: np.ndarray, weight: np.ndarray, C: float, init=None
    ) -> tuple[np.ndarray, float]:
        """:func:`fit_weighted` on :meth:`rows` (labels ``y``, ``weight`` 0: a row left out),
        without copying them: positives and negatives each carry half the rows' weight."""
        pos = y > 0
        n = 0.5 * int((weight > 0).sum())
        sw = np.where(pos, weight * (n / weight[pos].sum()), weight * (n / weight[~pos].sum()))
        return fit_logistic(self.rows(), y, sw, C, init=init)

    def fit_rows_many(
        self, y: np.ndarray, weights: list[np.ndarray], C: float, init=None
    ) -> list[tuple[np.ndarray, float]]:
        """:meth:`fit_rows` under each of ``weights`` (the folds of a cross-validation), the
        fits made together (:func:`fit_logistic_many`)."""
        pos = y > 0
        fits = []
        for weight in weights:
            n = 0.5 * int((weight > 0).sum())
            sw = np.where(pos, weight * (n / weight[pos].sum()), weight * (n / weight[~pos].sum()))
            fits.append((y, sw))
        return fit_logistic_many(self.rows(), fits, C, init=init)

    def labels(self, Q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Labels and weights of :meth:`rows`: examples 1, explicit negatives 0 (weighing
        ``EXPLICIT_NEGATIVE_WEIGHT``), the background 0, but the rows ``Q`` of it 1."""
        p, q = len(self.P), len(self.N)
        y = np.zeros(p + q + len(self.B))
        y[:p] = 1.0
        weight = np.ones(len(y))
        weight[p : p + q] = EXPLICIT_NEGATIVE_WEIGHT
        if Q is not None:
            y[p + q + Q] = 1.0
        return y, weight

    def probe(
        self, C: float, keep: np.ndarray | None = None, init=None
    ) -> tuple[np.ndarray, float]:
        """Examples against explicit negatives + the background rows ``keep``."""
        y, weight = self.labels()
        if keep is not None:
            start = len(self.P) + len(self.N)
            weight[start:] = 0.0
            weight[start + np.asarray(keep, dtype=np.int64)] = 1.0
        return self.fit_rows(y, weight, C, init)

    def fit_pseudo(
        self, order: np.ndarray, n_pseudo: int, cfg: HeadConfig, init=None
    ) -> tuple[np.ndarray, float]:
        """Examples + the first ``n_pseudo`` of ``order`` (weight ``pseudo_weight``) against
        explicit negatives + the rest of the background."""
        y, weight = self._pseudo(order, n_pseudo, cfg)
        return self.fit_rows(y, weight, cfg.C, init)

    def fit_pseudo_soon(self, order: np.ndarray, n_pseudo: int, cfg: HeadConfig, init=None) -> Soon:
        """:meth:`fit_pseudo` in a thread of its own (:class:`Soon`), while the caller fits
        another head that does not depend on it."""
        self.rows()  # made here, not in two threads at once
        return Soon(lambda: self.fit_pseudo(order, n_pseudo, cfg, init))

    def _pseudo(
        self, order: np.ndarray, n_pseudo: int, cfg: HeadConfig
    ) -> tuple[np.ndarray, np.ndarray]:
        Q = np.asarray(order[:n_pseudo], dtype=np.int64)
        y, weight = self.labels(Q)
        weight[len(self.P) + len(self.N) + Q] = cfg.pseudo_weight
        return y, weight

    def diffusion_order(self, cfg: HeadConfig) -> np.ndarray:
        """The background, best connected first to the examples (and last to the explicit
        negatives) in the k-NN graph of all the vectors."""
        p, q = len(self.P), len(self.N)
        V = np.concatenate([self.P, self.N, self.B]) if self.G is None else self.G
        against = p + np.arange(q) if q else None
        f = knn_diffusion(
            V,
            np.arange(p),
            k=cfg.knn,
            alpha=cfg.alpha,
            gamma=cfg.gamma,
            against=against,
            known=self.known,
        )
        return np.argsort(-f[p + q :], kind="stable")

    def cv_logits(
        self,
        order: np.ndarray,
        n_pseudo: int,
        cfg: HeadConfig,
        init: tuple[np.ndarray, float],
        folds: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The logits of the examples and explicit negatives under heads fitted without them
        (``folds`` folds, each fitted as :meth:`fit_pseudo`), and their labels (1 / 0)."""
        p, q = len(self.P), len(self.N)
        labels = np.concatenate([np.ones(p), np.zeros(q)])
        which = rng.permutation(p + q) % folds
        z = np.zeros(p + q)
        y, weight = self._pseudo(order, n_pseudo, cfg)
        marks = self.rows()[: p + q]
        outs = [which == f for f in range(folds)]
        weights = [np.where(np.r_[out, np.zeros(len(self.B), bool)], 0.0, weight) for out in outs]
        for out, (w, b) in zip(outs, self.fit_rows_many(y, weights, cfg.C, init), strict=True):
            z[out] = marks[out] @ w + b
        return z, labels

    def sample_only(self, sample: np.ndarray) -> Problem:
        """The problem with only the examples ``sample`` marks (those that size the class)."""
        return Problem(self.P[sample], self.N, self.B, None, coords=self.coords)

    def held_out_ranks(
        self,
        cfg: HeadConfig,
        rng: np.random.Generator,
        init: tuple[np.ndarray, float],
        sample: np.ndarray | None = None,
        share: float = 1.0,
    ) -> np.ndarray:
        """For each example: how many background vectors outscore it under a head trained
        without it (at most ``cfg.folds`` folds). Tells how many of the background look like
        the class. ``sample``: only the examples it marks, each under heads trained on the
        others it marks (the rest were picked for ranking near those: trained on, they would
        rank them near the top), and the other marked photos (out of the background, but
        photos of the library it was drawn from) counted where they rank, each as ``share``
        of one (the background's share of the photos it was drawn from)."""
        p = len(self.P)
        idx = np.arange(p) if sample is None else np.flatnonzero(sample)
        E = self.P[:0] if sample is None else np.concatenate([self.P[~sample], self.N])
        y, weight = self.labels()
        if sample is not None:
            weight[:p][~sample] = 0.0  # the other ✓ train no probe
        ranks = []
        folds = np.array_split(rng.permutation(len(idx)), min(len(idx), cfg.folds))
        weights = []
        for held in folds:
            kept = weight.copy()
            kept[idx[held]] = 0.0
            weights.append(kept)
        heads = self.fit_rows_many(y, weights, cfg.probe_C, init)
        for held, (w, b) in zip(folds, heads, strict=True):
            zb, ze = self.B @ w + b, E @ w + b
            for j in idx[held]:
                zj = self.P[j] @ w + b
                ranks.append(float((zb > zj).sum()) + share * float((ze > zj).sum()))
        return np.asarray(ranks)
