"""Real photos, real model: index ../shared/photos with the shared TFLite embedding model, learn
a class from 5 of its photos, and check that `find` ranks the rest of the class near the top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finder.learn.scores import average_precision

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def real_library(tmp_path_factory, photos: Path, tflite_model: Path):
    from tests.conftest import CLI

    cli = CLI(tmp_path_factory.mktemp("real") / "library")
    summary = cli.json("index", str(photos), "--model", str(tflite_model))
    assert summary["failed"] == 0 and summary["embedded"] >= 540
    return cli


@pytest.mark.parametrize(
    ("name", "folder"), [("sunflower", "flowers17/sunflower"), ("cat", "pets/cat")]
)
def test_five_examples_rank_the_class_near_the_top(real_library, photos: Path, name, folder):
    cli = real_library
    members = sorted(str(p) for p in (photos / folder).glob("*.jpg"))
    examples = members[:5]
    cli("learn", name, *examples)
    n = cli.json("status")["images"]
    ranked = cli.json("find", name, "--top", str(n))
    assert len(ranked) == n
    rest = [r for r in ranked if r["path"] not in set(examples)]
    truth = np.array([r["path"] in set(members) for r in rest])
    scores = np.array([r["probability"] for r in rest])
    ap = average_precision(truth, scores)
    print(f"{name}: average precision {ap:.3f} over {len(rest)} images")
    assert ap >= 0.85
