"""The head trainer with the experiment-only options of docs/heads.md (issue 6's rounds).

The product (:func:`finder.learn.train.train_head`) holds the default method only; the rows of
docs/heads.md that try other options are trained here, from the product's parts
(:class:`finder.learn.train.Problem`, the diffusion, the cut-off rules), so that the comparison
stays reproducible: ``scripts/experiment_heads.py`` uses :func:`train_variant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from finder.learn.cutoff import CutConfig, CutInput, cut_off, gap_near_size
from finder.learn.head import Head
from finder.learn.train import MIN_BACKGROUND, HeadConfig, Problem, fit_weighted, knn_diffusion


@dataclass(frozen=True)
class VariantConfig(HeadConfig):
    """The settings of the rounds of docs/heads.md's comparison (the method of issue 6: no
    calibration, cut 0.5 unless named) plus the options only the experiments use."""

    method: str = "pu-diffusion"
    calibrate: bool = False
    cut: CutConfig = CutConfig(rule="fixed")
    count_quantile: float = 0.5  # which quantile of the held-out ranks estimates the class size
    ranking: str = "diffusion"  # how pseudo-positives are picked: "diffusion" | "head"
    balanced: bool = True  # class weighting: examples and negatives carry equal total weight
    standardize: bool = False  # per-dimension standardisation (background mean/std), folded in
    # refinement re-picks pseudo-positives by head logit + refine_mix·ln(diffusion score);
    # None keeps the diffusion's order
    refine_mix: float | None = None
    # database-side augmentation of the k-NN graph's vectors (training time only): each vector
    # replaced by the normalised sum of its dba nearest (itself included), weighted cos^dba_power
    dba: int = 0
    dba_power: float = 3.0
    refine_rediffuse: bool = False  # refinement re-diffuses from examples + the head's top ranks


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


def train_variant(
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray,
    *,
    seed: int = 0,
    config: HeadConfig = VariantConfig(),
) -> Head:
    """``train_head`` with the options of :class:`VariantConfig` (a plain ``HeadConfig`` gives
    the product's head)."""
    cfg = (
        config
        if isinstance(config, VariantConfig)
        else VariantConfig(
            **{k: v for k, v in config.__dict__.items() if k not in ("method", "calibrate")},
            method="plain" if config.method == "plain" else "pu-diffusion",
        )
    )
    pb = Problem.checked(positives, negatives, background)
    p, m = len(pb.P), len(pb.B)
    Pu, Bu = pb.P, pb.B  # unit vectors, for the k-NN graph
    if cfg.dba > 1 and cfg.method != "plain" and m >= MIN_BACKGROUND:
        V = augment(np.concatenate([pb.P, pb.B]), cfg.dba, cfg.dba_power)
        Pu, Bu = V[:p], V[p:]
    mu, sd = 0.0, 1.0
    if cfg.standardize:  # a diagonal affine map: folded into w and b at the end
        ref = pb.B if m >= 2 else np.concatenate([pb.P, pb.N])
        mu = ref.mean(axis=0)
        sd = ref.std(axis=0) + 1e-3 * float(ref.std(axis=0).mean() + 1e-12)
        pb = Problem(*((A - mu) / sd for A in (pb.P, pb.N, pb.B)))
    params: dict[str, Any] = {"n_pos": p, "n_neg": len(pb.N), "n_background": m, "seed": seed}

    def result(w: np.ndarray, b: float, threshold: float) -> Head:
        w = w / sd
        return Head(
            w=w, b=b - float(w @ mu) if cfg.standardize else b, threshold=threshold, params=params
        )

    if cfg.method == "plain" or m < MIN_BACKGROUND:
        C = cfg.C if cfg.method == "plain" else 1.0
        Neg, neg_w = pb.negatives()
        w, b = fit_weighted(pb.P, np.ones(p), Neg, neg_w, C, balanced=cfg.balanced)
        params.update(method="plain", C=C, balanced=cfg.balanced, standardize=cfg.standardize)
        return result(w, b, 0.5)

    rng = np.random.default_rng(seed)
    probe = pb.probe(cfg.probe_C)
    if p >= 2:
        med = float(np.quantile(pb.held_out_ranks(cfg, rng, probe), cfg.count_quantile))
        n_pseudo = cfg.count_factor * med
    else:
        med = None
        n_pseudo = float(((pb.B @ probe[0] + probe[1]) >= 0).sum())
    n_pseudo_i = int(min(max(round(n_pseudo), 1), m // 2))

    def diffuse(seeds: np.ndarray) -> np.ndarray:
        graph = np.concatenate([Pu, Bu])
        return knn_diffusion(graph, seeds, k=cfg.knn, alpha=cfg.alpha, gamma=cfg.gamma)[p:]

    f = diffuse(np.arange(p)) if cfg.ranking == "diffusion" else pb.B @ probe[0] + probe[1]
    order = np.argsort(-f, kind="stable")
    w, b = pb.fit_pseudo(order, n_pseudo_i, cfg)
    drop = int(np.ceil(2 * med)) + 1 if med is not None else 2 * n_pseudo_i
    w3, b3 = pb.probe(cfg.probe_C, order[min(drop, m - 1) :], probe)
    n_size = max(1, int(((pb.B @ w3 + b3) >= 0).sum()))
    params["n_class_estimate"] = n_size
    for _ in range(cfg.refine_rounds):
        zb = np.sort(pb.B @ w + b)[::-1]
        n_past = int((zb >= gap_near_size(CutInput(zb, n_size), cfg.cut)).sum())
        n_pseudo_i = int(min(max(round(cfg.refine_scale * n_past), 1), m // 2))
        if cfg.refine_rediffuse and cfg.ranking == "diffusion":
            top = np.argsort(-(pb.B @ w + b), kind="stable")[:n_pseudo_i]
            f = diffuse(np.concatenate([np.arange(p), p + top]))
            order = np.argsort(-f, kind="stable")
        if cfg.refine_mix is not None and cfg.ranking == "diffusion":
            key = pb.B @ w + b + cfg.refine_mix * np.log(np.maximum(f, 1e-12))
            order = np.argsort(-key, kind="stable")
        w, b = pb.fit_pseudo(order, n_pseudo_i, cfg, (w, b))
    threshold = cut_off(CutInput(np.sort(pb.B @ w + b)[::-1], n_size), cfg.cut)
    params.update(method=cfg.method, C=cfg.C, n_pseudo=n_pseudo_i, ranking=cfg.ranking)
    return result(w, b, threshold)
