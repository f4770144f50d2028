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


def test_after_marks_and_undos_the_class_is_the_class_learned_from_what_remains(
    real_library, photos: Path
):
    """Issue 24, item 4: a class is a function of the marks it has. After any run of marks and
    undos its head, cut and ranking are those of a class learned afresh from the marks that
    remain (the marks path of the training included: ✓ and ✗ enough to calibrate on them)."""
    from finder.library import Change, Library, Mark

    cats = sorted(str(p) for p in (photos / "pets" / "cat").glob("*.jpg"))
    dogs = sorted(str(p) for p in (photos / "pets" / "dog").glob("*.jpg"))
    with Library(real_library.library) as lib:
        lib.learn("marked", cats[:5])
        lib.learn("marked", cats[5:10], negatives=dogs[:4])
        lib.learn("marked", [], negatives=dogs[4:8])
        lib.apply(Change("marked", undo=(dogs[1], cats[6])))
        lib.apply(
            Change("marked", (Mark(None, dogs[1], 0), Mark(None, cats[12], 1)), undo=(dogs[5],))
        )
        lib.apply(Change("marked", (Mark(None, dogs[9], 0),)))
        lib.apply(Change("marked", undo=(dogs[9],)))
        keep_pos = [p for p in cats[:10] + [cats[12]] if p != cats[6]]
        keep_neg = [p for p in dogs[:8] if p != dogs[5]]
        lib.learn("fresh", keep_pos[::-1], negatives=keep_neg)  # another order, the same marks
        marked, fresh = lib.class_record("marked"), lib.class_record("fresh")
        assert sorted(lib.examples("marked")) == sorted(lib.examples("fresh"))
        assert marked["head"]["params"].get("n_class_marks") is not None  # calibrated on marks
        assert marked["head"] == fresh["head"]  # weights, bias, cut, every parameter
        n = lib.status()["images"]
        assert [m.path for m in lib.find("marked", top=n)] == [
            m.path for m in lib.find("fresh", top=n)
        ]
