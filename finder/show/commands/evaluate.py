"""``finder eval``: few-shot classes measured on labelled folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finder.errors import UsageError
from finder.show import app as ui
from finder.show.progress import ProgressView

DatasetsArg = ui.argument(
    list[Path], "DATASET...", "Folders with one sub-folder per class; several make one library."
)
KsOpt = ui.option(
    str | None,
    "--k",
    metavar="K,...",
    help="Examples per class, comma-separated (1,2,5,10; 5 with --feedback).",
)
TrialsOpt = ui.option(int, "--trials", metavar="N", help="Random trials per class.", min=1)
SeedOpt = ui.option(int, "--seed", metavar="N", help="Seed of the random draws (repeatable runs).")
FeedbackOpt = ui.option(
    int | None,
    "--feedback",
    metavar="R",
    help="Rounds of simulated clicks after learning, each taught through `learn --add "
    "/ --not` (the class is learned in the library, then forgotten).",
    min=0,
)
ClicksOpt = ui.option(
    int, "--clicks", metavar="N", help="Photos marked per --feedback round.", min=1
)
ShownOpt = ui.option(
    str,
    "--shown",
    metavar="top|review",
    help="Which photos a round marks: top (the best-ranked unmarked) or review "
    "(a strip: the photos whose verdict teaches most, and a few drawn at random).",
)
HoldoutOpt = ui.option(
    float,
    "--holdout",
    metavar="SHARE",
    help="With --feedback: the share of the library held out (drawn per trial), never "
    "marked; every figure is scored on it (0: on the photos not marked).",
    min=0.0,
    max=0.9,
)
NoSmoothOpt = ui.option(
    bool,
    "--no-smooth",
    help="With --feedback: score the head's own answer, not the answer re-ranked near the cut "
    "by each photo's nearest neighbours (the default; the head's figures are beside it as "
    "*_head in --json).",
)


def evaluate(
    datasets: DatasetsArg,
    library: ui.LibraryOpt = None,
    backbone: ui.BackboneOpt = None,
    model: ui.ModelOpt = None,
    layer: ui.LayerOpt = None,
    weights: ui.WeightsOpt = None,
    ks: KsOpt = None,
    trials: TrialsOpt = 10,
    seed: SeedOpt = 0,
    feedback: FeedbackOpt = None,
    clicks: ClicksOpt = 10,
    shown: ShownOpt = "top",
    holdout: HoldoutOpt = 0.3,
    no_smooth: NoSmoothOpt = False,
    views: ui.ViewsOpt = None,
    precision: ui.PrecisionOpt = None,
    quiet: ui.QuietOpt = False,
    as_json: ui.JsonOpt = False,
) -> None:
    """Measure few-shot classes on labelled datasets (indexed into the library first; with
    --feedback the background of each class is the whole library, so use one that holds only
    the datasets)."""
    import numpy as np

    from finder.learn import evaluate as ev

    try:
        k_list = tuple(int(k) for k in (ks or "").split(",") if k.strip())
    except ValueError:
        raise UsageError(f"--k takes whole numbers separated by commas, not {ks!r}") from None
    if feedback is not None and len(k_list) > 1:
        raise UsageError("--feedback takes one --k")
    choice = ui.backbone_choice(backbone, model, layer, weights, views, precision)
    view = ProgressView(quiet or as_json)
    with ui.open_library(library, backbone=choice) as lib:
        try:
            lib.index([str(d) for d in datasets], progress=view)
        finally:
            view.stop()
        parts = [lib.vectors_under(str(d)) for d in datasets]
        paths = [p for part in parts for p in part[0]]
        X = np.concatenate([part[1] for part in parts])
        labels = ev.labels_from_paths(paths)
        groups = ev.groups_from_paths(paths)
        name = ", ".join(str(d) for d in datasets)
        if feedback is not None:
            from finder.learn.feedback import SMOOTH, LibraryTeacher
            from finder.learn.feedback import feedback as run_feedback

            result: dict[str, Any] = {
                "dataset": name,
                "feedback": run_feedback(
                    X,
                    labels,
                    LibraryTeacher(lib, paths),
                    k=k_list[0] if k_list else 5,
                    rounds=feedback,
                    clicks=clicks,
                    shown=shown,
                    trials=trials,
                    seed=seed,
                    groups=groups,
                    holdout=holdout,
                    smooth=None if no_smooth else SMOOTH,
                ),
            }
    if feedback is None:
        result = {
            "dataset": name,
            "few_shot": ev.few_shot(
                X, labels, ks=k_list or ev.DEFAULT_KS, trials=trials, seed=seed, groups=groups
            ),
            "classic": ev.classic(X, labels, seed=seed),
        }
    if as_json:
        ui.echo_json(result)
        return
    from rich.console import Console

    from finder.show.evaluate import render

    console = Console()
    for table in render(result):
        console.print(table)
