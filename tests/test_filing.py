"""Classes from what the person filed (issue 25), end to end through the CLI: keywords in each
naming and flavour (digiKam ``photo.jpg.xmp``, Lightroom ``photo.xmp``, XMP and IPTC embedded in
the JPEG) and folders become classes that say their source; a keyword removed, then the
refresh; a ✗ that beats a filed photo; suggestions as ``find --json`` rows; ``--apply`` and
``--unapply`` round trips (the sidecar holds the very keyword in its hierarchy and nothing else
changed); a malformed sidecar reported and never rewritten. A real backbone, SQLite, FAISS."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finder.ingest.keywords import sidecar_keywords
from finder.learn.filed import EXCLUSIVE_SLACK, exclusive_slack
from finder.learn.head import Head
from finder.library import Library
from tests.conftest import CLI, TFLITE_MODEL, make_photo
from tests.ingest.keyword_files import (
    MALFORMED,
    digikam_sidecar,
    iptc_record,
    jpeg_with,
    lightroom_sidecar,
    photoshop_app13,
    xmp_app1,
)


def build(root: Path) -> None:
    """``tagged/``: 6 red photos filed ``Shapes|Red`` (digiKam, Lightroom, embedded XMP, IPTC
    beside a Lightroom sidecar), 6 blue ones ``Shapes|Blue``; ``folders/red``, ``folders/blue``:
    5 of each; ``unsorted/``: 4 red, 4 blue, 4 green, one beside a malformed sidecar."""
    for i in range(6):
        name = root / "tagged" / f"r{i}.jpg"
        if i < 2:
            make_photo(name, "red", seed=i)
            Path(f"{name}.xmp").write_text(digikam_sidecar(["Shapes/Red"]))
        elif i < 4:
            make_photo(name, "red", seed=i)
            name.with_suffix(".xmp").write_text(lightroom_sidecar(["Shapes|Red"], ["Red"]))
        elif i == 4:
            jpeg_with(name, xmp_app1(lightroom_sidecar(["Shapes|Red"], ["Red"])), seed=i)
        else:  # IPTC's flat keyword and the hierarchy in a sidecar are one keyword
            jpeg_with(name, photoshop_app13(iptc_record(["Red"])), seed=i)
            name.with_suffix(".xmp").write_text(lightroom_sidecar(["Shapes|Red"], ["Red"]))
        blue = make_photo(root / "tagged" / f"b{i}.jpg", "blue", seed=100 + i)
        Path(f"{blue}.xmp").write_text(digikam_sidecar(["Shapes/Blue"]))
    for i in range(5):
        make_photo(root / "folders" / "red" / f"r{i}.jpg", "red", seed=200 + i)
        make_photo(root / "folders" / "blue" / f"b{i}.jpg", "blue", seed=300 + i)
    for i in range(4):
        make_photo(root / "unsorted" / f"r{i}.jpg", "red", seed=400 + i)
        make_photo(root / "unsorted" / f"b{i}.jpg", "blue", seed=500 + i)
        make_photo(root / "unsorted" / f"g{i}.jpg", "green", seed=600 + i)


@pytest.fixture
def filed(tmp_path: Path, model_args) -> tuple[CLI, Path]:
    root = tmp_path / "photos"
    build(root)
    cli = CLI(tmp_path / "library")
    cli("index", str(root), *model_args, "-q")
    return cli, root


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def kind(path: str) -> str:
    return os.path.basename(path)[0]  # r, b or g: what the photo shows


def test_keywords_of_every_flavour_become_classes_that_say_their_source(filed) -> None:
    cli, root = filed
    got = cli.json("learn", "--from-keywords", "--min", "3")
    rows = by_name(got["classes"])
    assert set(rows) == {"red", "blue"}  # Shapes, the parent, only with --parents
    assert rows["red"]["examples"] == 6 and rows["red"]["negatives"] == 6  # blue: siblings
    assert {r["action"] for r in rows.values()} == {"learned"}
    classes = by_name(cli.json("classes"))
    assert classes["red"]["source"] == "keyword" and classes["blue"]["source"] == "keyword"
    cli("learn", "hand", str(root / "unsorted" / "g0.jpg"))
    assert by_name(cli.json("classes"))["hand"]["source"] is None
    again = by_name(cli.json("learn", "--from-keywords", "--min", "3", "--parents")["classes"])
    assert again["shapes"]["action"] == "learned" and again["shapes"]["examples"] == 12
    assert again["red"]["action"] == "unchanged"  # its photos did not change: not retrained
    only = cli.json("learn", "--from-keywords", "--min", "3", "--only", "*/blue")["classes"]
    assert [(r["name"], r["action"]) for r in only] == [("blue", "unchanged")]
    assert cli.json("learn", "--from-keywords", "--only", "nothing*")["classes"] == []
    # a class made before is refreshed while its keyword holds a photo, whatever --min says
    high = cli.json("learn", "--from-keywords", "--min", "20")["classes"]
    assert {r["name"]: r["action"] for r in high} == dict.fromkeys(
        ("blue", "red", "shapes"), "unchanged"
    )


def test_folders_become_classes_the_unsorted_folder_does_not(filed) -> None:
    cli, root = filed
    got = by_name(cli.json("learn", "--from-folders", str(root), "--min", "5")["classes"])
    # tagged/ (12 photos) is a folder like any other; unsorted/ is not filing
    assert set(got) == {"red", "blue", "tagged"}
    assert got["red"]["examples"] == 5 and got["red"]["source"] == "folder"
    assert got["red"]["negatives"] == 5 + 12  # the sibling folders' photos
    rows = cli.json("suggest", "red")
    paths = [r["path"] for r in rows]
    assert all(str(root / "unsorted") in p for p in paths)  # nothing filed is suggested
    # the cut (a head of 5 examples on a library of 34) takes in most of the reds, no blue; the
    # ranking puts all four first. tagged/ holds reds too: a joint head of red, blue and
    # tagged (learn/joint.py) cannot tell red from tagged held out (balanced accuracy 0.5-0.7,
    # below JOINT_TRUST), so it does not choose and the margins do; trusted, it gave most reds
    # to tagged, which did not take them (below its cut): 1 red of 4 with the tiny Keras backbone
    reds = [p for p in paths if kind(p) == "r"]
    assert len(reds) >= 3 and "b" not in map(kind, paths)
    ranked = [r["path"] for r in cli.json("find", "red", "--top", "34")]
    assert [kind(p) for p in ranked if str(root / "unsorted") in p][:4] == ["r"] * 4
    result = cli("suggest", "red", "--apply", ok=False)
    assert result.exit_code != 0 and "copying or linking" in result.stderr
    exported = cli("suggest", "red", "--link", str(root.parent / "out"))
    assert sorted(os.listdir(root.parent / "out")) == sorted(os.path.basename(p) for p in paths)
    assert "linked" in exported.stderr


def test_a_keyword_removed_then_the_refresh(filed) -> None:
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    before = by_name(cli.json("classes"))
    sidecar = root / "tagged" / "r0.jpg.xmp"
    sidecar.write_text(digikam_sidecar(["Places/Paris"]))  # Red untagged, Paris tagged
    summary = cli.json("index", str(root), "-q")
    assert summary["embedded"] == 0 and summary["sidecars_read"] == 1
    got = by_name(cli.json("learn", "--from-keywords", "--min", "1")["classes"])
    assert got["red"]["action"] == "refreshed" and got["red"]["examples"] == 5
    assert got["paris"]["action"] == "learned"
    # blue's counter-examples are the same photos (r0 is filed under a sibling still, Paris):
    # not trained again
    assert got["blue"]["action"] == "unchanged" and got["blue"]["negatives"] == 6
    assert got["red"]["updated"] > before["red"]["updated"]
    # every Red keyword removed: the class goes (no ✓ of the person's keeps it)
    for f in (root / "tagged").glob("r*"):
        if f.suffix == ".xmp":
            f.write_text(digikam_sidecar(["Places/Paris"]))
    for i in (4, 5):  # the keywords embedded in the photo: the photo itself is replaced
        make_photo(root / "tagged" / f"r{i}.jpg", "red", seed=i)
    cli("index", str(root), "-q")
    refreshed = cli.json("learn", "--from-keywords", "--min", "1")
    assert "red" in refreshed["forgotten"]
    assert "red" not in by_name(cli.json("classes"))


def test_a_cross_beats_a_filed_photo(filed) -> None:
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    photo = str(root / "tagged" / "r1.jpg")
    with Library(cli.library) as lib:
        row = lib.folder.open_catalog().image_by_path(photo)
        record = lib.learn_ids("red", not_=[row.id])
        assert (record["n_pos"], record["n_neg"]) == (5, 7)  # filed, yet not of the class
        assert lib.examples("red") == [(photo, 0)]
    got = by_name(cli.json("learn", "--from-keywords", "--min", "3")["classes"])
    assert got["red"]["action"] == "unchanged"
    assert (got["red"]["examples"], got["red"]["negatives"]) == (5, 7)
    with Library(cli.library) as lib:
        assert row.id not in {m.id for m in lib.suggest("red")}


def test_suggest_rows_are_find_rows_and_every_class_is_counted(filed) -> None:
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    rows = cli.json("suggest", "red")
    assert rows and set(rows[0]) >= {"path", "probability", "taken"}
    assert set(rows[0]) == set(cli.json("find", "red")[0])  # the rows of find --json
    probs = [r["probability"] for r in rows]
    assert probs == sorted(probs, reverse=True)
    assert not any("/tagged/" in r["path"] for r in rows)
    kinds = [kind(r["path"]) for r in rows]
    assert "b" not in kinds  # blue's photos go to blue, its exclusive sibling
    unsorted_red = [r for r in rows if kind(r["path"]) == "r" and "/unsorted/" in r["path"]]
    assert len(unsorted_red) == 4  # every unsorted red photo, ranked above anything else
    assert kinds[: kinds.count("r")] == ["r"] * kinds.count("r")
    found = {r["path"] for r in cli.json("find", "red")}
    assert {r["path"] for r in rows} <= found
    counts = {r["name"]: r for r in cli.json("suggest")}
    assert counts["red"] == {"name": "red", "source": "keyword", "suggestions": len(rows)}
    top = cli.json("suggest", "red", "--top", "1", "--under", str(root / "unsorted"))
    assert top == [r for r in rows if "/unsorted/" in r["path"]][:1]
    text = cli("suggest").stdout
    assert "red" in text and "(keyword)" in text
    cli("learn", "hand", str(root / "unsorted" / "g0.jpg"))
    refused = cli("suggest", "hand", ok=False)
    assert refused.exit_code != 0 and "not made from keywords or folders" in refused.stderr


@pytest.mark.parametrize("other", ["blue", "green"])
def test_below_its_cut_a_photo_no_sibling_takes_is_suggested_as_far_as_the_siblings_cover(
    tmp_path: Path, model_args, other: str
) -> None:
    """Among exclusive siblings the cut is lowered for the photos no sibling takes (by the
    margins above their cuts and the joint head of their filed photos: ``finder.siblings``),
    by ``EXCLUSIVE_SLACK`` where the siblings cover the photos not of the class
    (red over blue: the unsorted photos are red or blue) and by less where a kind nobody filed
    is most of them (red over green, and a dozen green photos more): there a photo below the
    cut that blue does not take is as likely green. A cut given (``min_prob``) is kept."""
    root = tmp_path / "photos"
    build(root)
    for k, share in enumerate(np.linspace(0.1, 0.9, 17)):  # red over the other, faint to full
        red = Image.open(make_photo(tmp_path / "parts" / f"r{k}.jpg", "red", seed=700 + k))
        mix = Image.open(make_photo(tmp_path / "parts" / f"o{k}.jpg", other, seed=800 + k))
        Image.blend(mix, red, float(share)).save(root / "unsorted" / f"m{k}.jpg")
        if other == "green":
            make_photo(root / "unsorted" / f"g{10 + k}.jpg", "green", seed=900 + k)
    cli = CLI(tmp_path / "library")
    cli("index", str(root), *model_args, "-q")
    cli("learn", "--from-keywords", "--min", "3")
    with Library(cli.library) as lib:
        red, blue = (Head.from_dict(lib.class_record(c)["head"]) for c in ("red", "blue"))
        catalog = lib.folder.open_catalog()
        filed = set(catalog.ids_under(str(root / "tagged"), "ok"))  # red's and blue's
        ids = np.asarray(sorted(set(catalog.ok_ids()) - filed), dtype=np.int64)
        paths = catalog.paths_for(ids.tolist())
        X = lib.folder.open_vectors().get(ids)
        mine = red.logits(X) - red.logit_threshold
        theirs = blue.logits(X) - blue.logit_threshold
        margin = {
            paths[int(i)]: (float(a), float(b)) for i, a, b in zip(ids, mine, theirs, strict=True)
        }
        got = {m.path: m.score for m in lib.suggest("red")}
        record = lib.filing.filing("red")
        rivals = lib.filing.siblings.rivals(record)
        assert [r.record.name for r in rivals] == ["blue"]
        untaken = dict(zip(ids.tolist(), lib.filing.siblings.kept(record, rivals, X), strict=True))
        untaken = {paths[i]: bool(k) for i, k in untaken.items()}
        # 6 red and 6 blue filed: a joint head chooses between them, fitted once for both
        assert len(lib.filing.siblings.joints) == 1
        blue_got = {m.path for m in lib.suggest("blue")}
        assert len(lib.filing.siblings.joints) == 1
        assert not blue_got & set(got)  # a photo goes to one sibling at most
        slack = exclusive_slack(red, [blue])
        if other == "blue":
            assert slack > 0.6 * EXCLUSIVE_SLACK
        else:
            assert slack < 0.5 * EXCLUSIVE_SLACK
        assert set(got) == {p for p, (a, _) in margin.items() if a >= -slack and untaken[p]}
        below = [p for p in got if margin[p][0] < 0]
        if other == "blue" and TFLITE_MODEL.exists():  # the tiny Keras backbone's logits span
            # ±30 over the 17 blends: none lies within the slack (0.66) of red's cut to show it
            assert below, "no suggestion under red's own cut: the slack is not at work"
        assert all(got[p] < red.threshold for p in below)  # shown with its own probability
        strict = {m.path for m in lib.suggest("red", min_prob=red.threshold)}
        assert strict == {p for p, (a, _) in margin.items() if a >= 0 and untaken[p]}
        assert strict <= set(got)


def _items(path: Path) -> list[tuple[str, str]]:
    """Every element of a sidecar as (tag, text), in document order."""
    return [(e.tag, (e.text or "").strip()) for e in ET.parse(path).getroot().iter()]


def test_apply_writes_the_keyword_in_its_hierarchy_and_nothing_else(filed) -> None:
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    rows = cli.json("suggest", "red")
    first, second = Path(rows[0]["path"]), Path(rows[1]["path"])
    dk = Path(f"{first}.xmp")  # a digiKam sidecar holding another keyword already
    dk.write_text(digikam_sidecar(["Places/Paris"]))
    cli("index", str(root), "-q")
    original = _items(dk)
    photo_bytes = first.read_bytes()
    dry = cli.json("suggest", "red", "--dry-run", "--top", "2")
    assert [(r["sidecar"], r["action"]) for r in dry] == [
        (str(dk), "add"),
        (f"{second}.xmp", "create"),
    ]
    assert _items(dk) == original and not Path(f"{second}.xmp").exists()
    cli("suggest", "red", "--apply", "--top", "2")
    assert first.read_bytes() == photo_bytes  # the photo is never touched
    assert sidecar_keywords(dk) == ("Places|Paris", "Shapes|Red")
    assert sidecar_keywords(f"{second}.xmp") == ("Shapes|Red",)
    added = [x for x in _items(dk) if x not in original]
    assert sorted(added) == sorted(
        [
            ("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li", "Shapes/Red"),
            ("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li", "Shapes|Red"),
            ("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li", "Red"),
        ]
    )
    assert [x for x in _items(dk) if x not in added] == original  # nothing else changed
    summary = cli.json("index", str(root), "-q")  # the index reads them back: now filed
    assert summary["sidecars_read"] == 2 and summary["embedded"] == 0
    got = by_name(cli.json("learn", "--from-keywords", "--min", "3")["classes"])
    assert got["red"]["examples"] == 8
    assert not {str(first), str(second)} & {r["path"] for r in cli.json("suggest", "red")}
    # taken back: exactly what was written, and the photos marked ✗
    back = cli("suggest", "red", "--unapply", str(first), str(second))
    assert back.stdout.count("taken back") == 2
    assert _items(dk) == original and not Path(f"{second}.xmp").exists()
    with Library(cli.library) as lib:
        assert sorted(lib.examples("red")) == sorted([(str(first), 0), (str(second), 0)])
    again = cli("suggest", "red", "--unapply", str(first), ok=False)
    assert again.exit_code == 1 and "wrote no keyword" in again.stderr


def test_a_malformed_sidecar_is_reported_and_never_rewritten(filed) -> None:
    cli, root = filed
    cli("learn", "--from-keywords", "--min", "3")
    rows = cli.json("suggest", "red")
    bad = Path(f"{rows[0]['path']}.xmp")
    bad.write_bytes(MALFORMED)
    result = cli("suggest", "red", "--apply", ok=False)
    assert result.exit_code == 1 and str(bad) in result.stderr and "left as it is" in result.stderr
    assert bad.read_bytes() == MALFORMED
    for r in rows[1:]:  # the others are filed all the same
        assert sidecar_keywords(f"{r['path']}.xmp") == ("Shapes|Red",)


def test_bad_input_is_one_line(filed) -> None:
    cli, root = filed
    for args, words in (
        (("learn", "--from-keywords", "--min", "0"), "--min"),
        (("learn", "--from-folders", str(root / "nowhere")), "no such folder"),
        (("learn", "--from-keywords", "red"), "take no NAME"),
        (("learn", "--from-keywords", "--from-folders", str(root)), "choose one"),
        (("suggest", "nothing"), "no class named"),
        (("suggest", "--apply"), "name the class"),
    ):
        result = cli(*args, ok=False)
        assert result.exit_code != 0 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
