"""`finder eval`'s tables: the show stage renders what the learn stage's protocols return."""

from __future__ import annotations

import subprocess
import sys

from finder.learn.evaluate import classic, few_shot
from finder.learn.feedback import ArrayTeacher, feedback
from finder.show.evaluate import render
from tests.learn.synthetic import library


def test_render_gives_tables():
    X, y = library(n_classes=2, per_class=10, dim=32, spread=0.05)
    labels = [f"c{i}" for i in y]
    few = few_shot(X, labels, ks=(1,), trials=1)
    cl = classic(X, labels, splits=1, test_fraction=0.2)
    tables = render({"few_shot": few, "classic": cl})
    assert len(tables) == 3
    assert tables[0].row_count == 2 and tables[2].row_count == 1


def test_render_feedback_shows_labels_actions_and_the_estimate():
    X, y = library(n_classes=3, per_class=40, dim=32, spread=0.1, seed=2)
    labels = [f"c{i}" for i in y]
    result = feedback(
        X, labels, ArrayTeacher(X), k=3, rounds=1, clicks=10, shown="review", trials=1
    )
    per_class, means = render({"feedback": result})
    assert per_class.row_count == 3 * 2
    headers = [c.header for c in means.columns]
    assert {"labels", "actions", "P held", "R held"} <= set(headers)


def test_the_learn_stage_imports_neither_rich_nor_the_show_stage():
    code = (
        "import sys, finder.learn.feedback, finder.learn.evaluate, finder.learn.estimate, "
        "finder.learn.strip; "
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('finder.show')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
