"""``finder eval``'s tables for the terminal (rich), from the results of :mod:`finder.learn`'s
protocols (:func:`finder.learn.evaluate.few_shot`, :func:`~finder.learn.evaluate.classic`,
:func:`finder.learn.feedback.feedback`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table


def render(result: Mapping[str, Any]) -> list[Table]:
    """Rich tables for a result of ``few_shot``, ``classic`` or ``feedback`` (or a dict
    ``{"few_shot": ..., "classic": ..., "feedback": ...}`` holding some of them)."""
    if "protocol" not in result:
        tables: list[Table] = []
        for key in ("few_shot", "classic", "feedback"):
            if key in result:
                tables += render(result[key])
        return tables
    if result["protocol"] == "feedback":
        return render_feedback(result)
    if result["protocol"] == "classic":
        t = Table(title=f"classic protocol ({result['note']})")
        for col in ("images", "classes", "test/split", "top-1", "top-5"):
            t.add_column(col, justify="right")
        t.add_row(
            str(result["n_images"]),
            str(result["n_classes"]),
            str(result["test_images_per_split"]),
            f"{result['top1']:.3f} ± {result['top1_std']:.3f}",
            f"{result['top5']:.3f} ± {result['top5_std']:.3f}",
        )
        return [t]
    title = (
        f"few-shot: {result['n_images']} images, {result['trials']} trials, seed {result['seed']}"
        f" — AP, and precision/recall of the default find output"
    )
    per_class = [
        [r["class"], str(r["k"])]
        + [f"{r[key]:.3f}" for key in ("ap", "precision", "recall")]
        + [f"{r['returned']:.1f}"]
        for r in result["rows"]
    ]
    means = [
        [r["group"], str(r["k"]), str(r["n_classes"])]
        + [f"{r[key]:.3f}" for key in ("ap", "precision", "recall")]
        for r in result["means"]
    ]
    return [
        table(title, ["class", "k", "AP", "precision", "recall", "returned"], per_class),
        table(
            "few-shot: means over classes",
            ["classes", "k", "n", "mean AP", "precision", "recall"],
            means,
        ),
    ]


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def render_feedback(result: Mapping[str, Any]) -> list[Table]:
    """Per class and round, then the means: the figures over the held-out photos, the labels
    and actions, and the estimate beside its truth."""
    cols = ["AP", "precision", "recall", "F1", "ECE", "best-cut F1"]
    keys = ("ap", "precision", "recall", "f1", "ece", "best_f1")
    held = result.get("holdout", 0.0)
    scored = f"scored on a held-out {held:.0%}" if held else "marked photos left out"
    if result.get("smooth"):
        scored += "; the answer re-ranked near the cut by its neighbours (head F1: without)"
    title = (
        f"feedback: {result['n_images']} images, k={result['k']}, {result['trials']} trials, "
        f"{result['rounds']} rounds of {result['clicks']} ({result['shown']}), seed "
        f"{result['seed']} — {scored}"
    )
    per_class = [
        [r["class"], f"{r['labels']:.0f}"]
        + [f"{r[key]:.3f}" for key in keys]
        + [
            f"{r['returned']:.1f}",
            _est(r.get("estimated_precision"), r.get("true_precision")),
            _est(r.get("estimated_recall"), r.get("true_recall")),
        ]
        for r in result["rows"]
        if r["scored"]
    ]
    means = [
        [r["group"], r["set"], str(r["round"]), str(r["n_classes"]), f"{r['labels']:.0f}"]
        + [f"{r[key]:.3f}" for key in keys]
        + [
            _num(r.get("f1_head")),
            _num(r.get("actions_median"), ".0f"),
            _share(r.get("precision_coverage")),
            _share(r.get("recall_coverage")),
            _num(r.get("precision_halfwidth_median"), ".2f"),
            _num(r.get("recall_halfwidth_median"), ".2f"),
        ]
        for r in result["means"]
    ]
    return [
        table(
            title,
            ["class", "labels"] + cols + ["returned", "est. P / true", "est. R / true"],
            per_class,
        ),
        table(
            "feedback: means over classes (clicked: the classes scored after clicks); actions: "
            "median flips + 1 per strip; the estimate: how often its range held the truth, and "
            "its median half-width",
            ["classes", "set", "round", "n", "labels"]
            + cols
            + ["head F1", "actions", "P held", "R held", "± P", "± R"],
            means,
        ),
    ]


def _est(estimated: float | None, truth: float | None) -> str:
    return f"{_num(estimated, '.2f')} / {_num(truth, '.2f')}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A rich table: the first column left-aligned, the others right-aligned."""
    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    return t
