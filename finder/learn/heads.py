"""Few-shot class heads: a logistic model, linear in the unit-norm embedding.

A :class:`Head` scores a vector ``x`` as ``logit = w·x + b`` and a probability
``sigmoid(logit)``; ``threshold`` is the probability cut-off of the default ``find`` output.
Everything the training does (centring, scaling, pseudo-labelling the background) is folded
into ``w`` and ``b``, so ``find`` can use ``w`` as a maximum-inner-product query.

This module imports numpy and scipy only (never TensorFlow).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from finder.errors import LibraryError, UsageError

BACKGROUND_SIZE: int = 1000
"""How many random library vectors form the background sample of ``finder learn``."""

EXPLICIT_NEGATIVE_WEIGHT: float = 3.0
"""An explicit negative (the user said so) weighs this many times a background vector."""


@dataclass
class Head:
    """A learned class: ``proba(x) = sigmoid(w·x + b)``; ``find`` returns ``proba >= threshold``."""

    w: np.ndarray
    b: float
    threshold: float = 0.5
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.w = np.ascontiguousarray(self.w, dtype=np.float32).reshape(-1)
        self.b = float(self.b)
        self.threshold = float(self.threshold)

    @property
    def dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def logit_threshold(self) -> float:
        """The cut-off as a logit: ``proba >= threshold`` iff ``logit >= logit_threshold``."""
        return logit(self.threshold)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``X @ w + b`` for ``X`` of shape ``[n, dim]`` (or one vector ``[dim]``)."""
        X = np.asarray(X, dtype=np.float32)
        if X.shape[-1] != self.dim:
            raise UsageError(f"vectors have dimension {X.shape[-1]}, this head expects {self.dim}")
        return X @ self.w + np.float32(self.b)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """``sigmoid(logits(X))``, computed without overflow."""
        return sigmoid(self.logits(X))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and compact: ``w`` is base64 of its little-endian float32 bytes."""
        return {
            "dim": self.dim,
            "w": base64.b64encode(self.w.astype("<f4").tobytes()).decode("ascii"),
            "b": self.b,
            "threshold": self.threshold,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        try:
            raw = base64.b64decode(data["w"], validate=True)
            w = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            dim = int(data.get("dim", w.shape[0]))
            b = float(data["b"])
            threshold = float(data.get("threshold", 0.5))
            params = dict(data.get("params", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise LibraryError(f"stored head is unreadable: {e}") from None
        if w.shape[0] != dim:
            raise LibraryError(f"stored head has {w.shape[0]} weights, expected {dim}")
        return cls(w=w, b=b, threshold=threshold, params=params)


def background_indices(
    n: int, exclude: np.ndarray, rng: np.random.Generator, size: int = BACKGROUND_SIZE
) -> np.ndarray:
    """Positions (sorted, among ``0..n-1``) of the random background sample of ``finder learn``.

    ``exclude`` holds positions that must not be drawn (the examples). At most ``size``
    positions; fewer when the library is small.
    """
    exclude = np.asarray(exclude, dtype=np.int64).reshape(-1)
    mask = np.ones(n, dtype=bool)
    mask[exclude[(exclude >= 0) & (exclude < n)]] = False
    pool = np.flatnonzero(mask)
    if len(pool) <= size:
        return pool
    return np.sort(rng.choice(pool, size=size, replace=False))


def logit(p: float) -> float:
    """The inverse of the sigmoid, for a probability clipped into (0, 1)."""
    t = min(max(float(p), 1e-12), 1 - 1e-12)
    return float(np.log(t / (1 - t)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` in float64, without overflow."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


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
    res = minimize(fg, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 300, "gtol": 1e-5})
    return res.x[:d].astype(np.float32), float(res.x[d])


def _fit_weighted(
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


def augment(V: np.ndarray, k: int, power: float = 3.0) -> np.ndarray:
    """Database-side augmentation (Arandjelović & Zisserman 2012; Radenović et al. 2018): each
    unit row of ``V`` becomes the normalised sum of its ``k`` nearest rows (itself included),
    weighted ``max(0, cos)^power``. Used for the k-NN graph at training time only."""
    k = min(k, len(V))
    A = V @ V.T
    nbr = np.argpartition(-A, k - 1, axis=1)[:, :k]
    wts = np.maximum(np.take_along_axis(A, nbr, axis=1), 0.0) ** power
    Z = np.einsum("nk,nkd->nd", wts, V[nbr])
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def knn_diffusion(
    V: np.ndarray, seeds: np.ndarray, *, k: int = 5, alpha: float = 0.8, gamma: float = 3.0
) -> np.ndarray:
    """Scores of the rows of ``V`` (unit vectors) after diffusing from ``seeds`` over their
    k-nearest-neighbour graph: ``f = (I - αS)⁻¹ y`` with ``S`` the symmetrically normalised
    affinity ``max(0, cos)^γ`` (Zhou et al. 2004; Iscen et al. 2017). Training-time only."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg

    n = len(V)
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n)
    A = V @ V.T
    np.fill_diagonal(A, -np.inf)
    nbr = np.argpartition(-A, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    vals = np.maximum(A[rows, nbr.ravel()], 0.0).astype(np.float64) ** gamma
    W = sp.csr_matrix((vals, (rows, nbr.ravel())), shape=(n, n))
    W = W + W.T
    deg = np.asarray(W.sum(axis=1)).ravel()
    deg[deg == 0] = 1.0
    Dm = sp.diags(deg**-0.5)
    y = np.zeros(n)
    y[seeds] = 1.0
    f, _ = cg(sp.eye(n) - alpha * (Dm @ W @ Dm), y, rtol=1e-6, maxiter=100)
    return f


@dataclass(frozen=True)
class HeadConfig:
    """How :func:`train_head` learns; the default is the method chosen by ``finder eval``
    (docs/heads.md). ``method="plain"`` is the baseline: balanced logistic regression on the
    examples against the background, cut-off 0.5."""

    method: str = "pu-diffusion"
    C: float = 3.0
    probe_C: float = 1.0
    pseudo_weight: float = 0.3
    count_factor: float = 1.5
    count_quantile: float = 0.5  # which quantile of the held-out ranks estimates the class size
    knn: int = 5
    alpha: float = 0.8
    gamma: float = 3.0
    ranking: str = "diffusion"  # how pseudo-positives are picked: "diffusion" | "head"
    balanced: bool = True  # class weighting: examples and negatives carry equal total weight
    standardize: bool = False  # per-dimension standardisation (background mean/std), folded in
    threshold: str = "size-logit"  # "fixed" (0.5) | "logit" | "count" | "gap" | "size-logit"
    threshold_logit: float = 0.0
    # "size-logit": cut = size_offset - size_slope·ln(n / (size_ref·m)), n = background past
    # logit 0 (threshold_logit also steers the refinement, so the rule has its own offset)
    size_offset: float = 0.3
    size_slope: float = 0.4
    size_ref: float = 0.037  # 20 of 540: a flower class of the shared photos
    gap_window: float = 1.3
    refine_rounds: int = 1
    refine_scale: float = 0.7
    # refinement re-picks pseudo-positives by head logit + refine_mix·ln(diffusion score);
    # None keeps the diffusion's order
    refine_mix: float | None = None
    # database-side augmentation of the k-NN graph's vectors (training time only): each vector
    # replaced by the normalised sum of its dba nearest (itself included), weighted cos^dba_power
    dba: int = 0
    dba_power: float = 3.0
    refine_rediffuse: bool = False  # refinement re-diffuses from examples + the head's top ranks
    folds: int = 5


DEFAULT_CONFIG = HeadConfig()
PLAIN_CONFIG = HeadConfig(method="plain", C=1.0, threshold="fixed")

MIN_BACKGROUND: int = 20
"""Below this many background vectors the head is plain and the cut-off falls back to 0.5."""


def _check(name: str, A: np.ndarray, dim: int | None) -> np.ndarray:
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
    if not np.all(np.isfinite(A)):
        raise UsageError(f"{name} contain non-finite values")
    return A


def _cut_at_count(z_sorted: np.ndarray, count: float) -> float:
    """A logit between the ``count``-th and the next highest of ``z_sorted`` (descending)."""
    c = int(min(max(round(count), 1), len(z_sorted) - 1))
    return float((z_sorted[c - 1] + z_sorted[c]) / 2)


def _cut_at_gap(z_sorted: np.ndarray, count: float, window: float) -> float:
    """The widest gap between consecutive scores whose rank is within ``window``× of
    ``count``: where the class most plausibly ends."""
    m = len(z_sorted)
    lo = max(1, int(np.floor(count / window)))
    hi = min(m - 1, int(np.ceil(count * window)))
    if hi < lo:
        return _cut_at_count(z_sorted, count)
    cuts = np.arange(lo, hi + 1)  # cut between positions c-1 and c
    j = cuts[np.argmax(z_sorted[cuts - 1] - z_sorted[cuts])]
    return float((z_sorted[j - 1] + z_sorted[j]) / 2)


def _held_out_ranks(
    P: np.ndarray,
    Neg: np.ndarray,
    neg_w: np.ndarray,
    B: np.ndarray,
    cfg: HeadConfig,
    rng: np.random.Generator,
    init: tuple[np.ndarray, float],
) -> np.ndarray:
    """For each example: how many background vectors outscore it under a head trained without
    it (at most ``cfg.folds`` folds). Tells how many of the background look like the class."""
    p = len(P)
    folds = np.array_split(rng.permutation(p), min(p, cfg.folds))
    ranks = []
    for held in folds:
        keep = np.setdiff1d(np.arange(p), held)
        w, b = _fit_weighted(P[keep], np.ones(len(keep)), Neg, neg_w, cfg.probe_C, init)
        zb = B @ w + b
        ranks += [int((zb > P[j] @ w + b).sum()) for j in held]
    return np.asarray(ranks)


def train_head(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    *,
    seed: int = 0,
    config: HeadConfig = DEFAULT_CONFIG,
) -> Head:
    """Learn a class from example vectors.

    ``positives``: the user's examples ``[p, d]`` (p ≥ 1); ``negatives``: explicit
    counter-examples ``[q, d]`` (may be empty; each weighs ``EXPLICIT_NEGATIVE_WEIGHT``
    background vectors); ``background``: an unlabelled random sample of the library ``[m, d]``
    (may be empty, may contain members of the class).

    The default method (docs/heads.md) treats the background as unlabelled, not negative:
    held-out ranks of the examples estimate how many background vectors belong to the class,
    a diffusion over the k-NN graph of examples + background picks those as pseudo-positives
    (weight ``pseudo_weight``), and the head is trained on examples + pseudo-positives against
    the rest. Its cut-off sits at the widest score gap near the estimated class size.
    """
    cfg = config
    P = _check("examples", positives, None)
    if P.shape[0] == 0:
        raise UsageError("a class needs at least one example")
    d = P.shape[1]
    N = _check("negatives", negatives, d)
    B = _check("background vectors", background, d)
    p, q, m = len(P), len(N), len(B)
    if q + m == 0:
        raise UsageError("a class needs negatives or a background sample to learn from")
    rng = np.random.default_rng(seed)
    params: dict[str, Any] = {"n_pos": p, "n_neg": q, "n_background": m, "seed": seed}
    Pu, Bu = P, B  # unit vectors, for the k-NN graph
    if cfg.dba > 1 and cfg.method != "plain" and m >= MIN_BACKGROUND:
        V = augment(np.concatenate([P, B]), cfg.dba, cfg.dba_power)
        Pu, Bu = V[:p], V[p:]
    if cfg.standardize:  # a diagonal affine map: folded into w and b at the end
        ref = B if m >= 2 else np.concatenate([P, N])
        mu = ref.mean(axis=0)
        sd = ref.std(axis=0) + 1e-3 * float(ref.std(axis=0).mean() + 1e-12)
        P, N, B = ((A - mu) / sd for A in (P, N, B))
    Neg = np.concatenate([N, B])
    neg_w = np.concatenate([np.full(q, EXPLICIT_NEGATIVE_WEIGHT), np.ones(m)])

    def result(w: np.ndarray, b: float, threshold: float) -> Head:
        if cfg.standardize:
            w = w / sd
            b = b - float(w @ mu)
        return Head(w=w, b=b, threshold=threshold, params=params)

    if cfg.method == "plain" or m < MIN_BACKGROUND:
        C = cfg.C if cfg.method == "plain" else 1.0
        w, b = _fit_weighted(P, np.ones(p), Neg, neg_w, C, balanced=cfg.balanced)
        params.update(method="plain", C=C, balanced=cfg.balanced, standardize=cfg.standardize)
        if cfg.method != "plain":
            params["fallback"] = f"background of {m} < {MIN_BACKGROUND}: plain head"
        return result(w, b, 0.5)
    if cfg.method != "pu-diffusion":
        raise UsageError(f"unknown head method {cfg.method!r}")

    # 1. how many of the background look like the class (held-out ranks of the examples)
    probe = _fit_weighted(P, np.ones(p), Neg, neg_w, cfg.probe_C)
    if p >= 2:
        ranks = _held_out_ranks(P, Neg, neg_w, B, cfg, rng, probe)
        med = float(np.quantile(ranks, cfg.count_quantile))
        n_pseudo = cfg.count_factor * med
    else:  # one example: no held-out estimate; count what the probe head accepts
        med = None
        n_pseudo = float(((B @ probe[0] + probe[1]) >= 0).sum())
    n_pseudo_i = int(min(max(round(n_pseudo), 1), m // 2))

    # 2. pseudo-positives: the background best connected to the examples in the k-NN graph
    if cfg.ranking == "diffusion":
        f = knn_diffusion(
            np.concatenate([Pu, Bu]), np.arange(p), k=cfg.knn, alpha=cfg.alpha, gamma=cfg.gamma
        )[p:]
    else:  # self-training: the probe head's own ranking
        f = B @ probe[0] + probe[1]
    order = np.argsort(-f, kind="stable")

    # 3. the head: examples + pseudo-positives against explicit negatives + the rest
    def fit_head(n_pseudo: int, init: tuple[np.ndarray, float] | None) -> tuple[np.ndarray, float]:
        Q, R = order[:n_pseudo], order[n_pseudo:]
        pos = np.concatenate([P, B[Q]])
        pos_w = np.concatenate([np.ones(p), np.full(len(Q), cfg.pseudo_weight)])
        neg = np.concatenate([N, B[R]])
        negw = np.concatenate([np.full(q, EXPLICIT_NEGATIVE_WEIGHT), np.ones(len(R))])
        return _fit_weighted(pos, pos_w, neg, negw, cfg.C, init, balanced=cfg.balanced)

    w, b = fit_head(n_pseudo_i, None)

    # class size once the likely members are out of the negatives: a probe head's count
    n_size = None
    if cfg.threshold in ("count", "gap") or cfg.refine_rounds > 0:
        drop = int(np.ceil(2 * med)) + 1 if med is not None else 2 * n_pseudo_i
        keep = order[min(drop, m - 1) :]
        w3, b3 = _fit_weighted(
            P,
            np.ones(p),
            np.concatenate([N, B[keep]]),
            np.concatenate([np.full(q, EXPLICIT_NEGATIVE_WEIGHT), np.ones(len(keep))]),
            cfg.probe_C,
            probe,
        )
        n_size = max(1, int(((B @ w3 + b3) >= 0).sum()))
        params["n_class_estimate"] = n_size

    def gap_cut(zb: np.ndarray) -> float:
        n_logit = max(1, int((zb >= cfg.threshold_logit).sum()))
        return _cut_at_gap(zb, float(np.sqrt(n_size * n_logit)), cfg.gap_window)

    # 3b. refine: re-pick the pseudo-positives from how many the head itself puts past the gap
    for _ in range(cfg.refine_rounds):
        zb = np.sort(B @ w + b)[::-1]
        n_past = int((zb >= gap_cut(zb)).sum())
        n_pseudo_i = int(min(max(round(cfg.refine_scale * n_past), 1), m // 2))
        if cfg.refine_rediffuse and cfg.ranking == "diffusion":
            top = np.argsort(-(B @ w + b), kind="stable")[:n_pseudo_i]
            f = knn_diffusion(
                np.concatenate([Pu, Bu]),
                np.concatenate([np.arange(p), p + top]),
                k=cfg.knn,
                alpha=cfg.alpha,
                gamma=cfg.gamma,
            )[p:]
            order = np.argsort(-f, kind="stable")
        if cfg.refine_mix is not None and cfg.ranking == "diffusion":
            key = B @ w + b + cfg.refine_mix * np.log(np.maximum(f, 1e-12))
            order = np.argsort(-key, kind="stable")
        w, b = fit_head(n_pseudo_i, (w, b))

    # 4. the cut-off, from the background's scores under the head
    zb = np.sort(B @ w + b)[::-1]
    if cfg.threshold == "fixed":
        cut = 0.0
    elif cfg.threshold == "logit":
        cut = cfg.threshold_logit
    elif cfg.threshold == "count":
        cut = _cut_at_count(zb, n_size)
    elif cfg.threshold == "gap":
        cut = gap_cut(zb)
    elif cfg.threshold == "size-logit":  # small estimated classes cut higher, large ones lower
        n_past = max(1, int((zb >= 0).sum()))
        cut = cfg.size_offset - cfg.size_slope * float(np.log(n_past / (cfg.size_ref * m)))
    else:
        raise UsageError(f"unknown threshold rule {cfg.threshold!r}")
    threshold = float(np.clip(sigmoid(np.array([cut]))[0], 1e-4, 1 - 1e-4))
    params.update(
        method=cfg.method,
        C=cfg.C,
        n_pseudo=n_pseudo_i,
        refine_rounds=cfg.refine_rounds,
        pseudo_weight=cfg.pseudo_weight,
        knn=cfg.knn,
        alpha=cfg.alpha,
        ranking=cfg.ranking,
        threshold_rule=cfg.threshold,
    )
    return result(w, b, threshold)
