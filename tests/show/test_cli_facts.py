"""Photo facts, filters, export and tags end to end through the CLI: photos with EXIF the test
writes, a real backbone, SQLite and FAISS."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from finder.store.facts import Filters, distance_km
from tests.conftest import make_photo
from tests.ingest.test_facts import make_exif

# folder, kind, EXIF: (date, offset, gps, make, model) for each photo
TREE = {
    "trip/paris": ("red", ("2019:06:01 10:00:00", "+02:00", (48.8583, 2.2945), "Canon", "EOS 5D")),
    "trip/sydney": (
        "red",
        ("2019:12:24 18:30:00", "+11:00", (-33.8568, 151.2153), "NIKON", "D750"),
    ),
    "trip/rio": ("blue", ("2020:02:10 09:15:00", None, (-22.9519, -43.2105), "Apple", "iPhone 8")),
    "trip/ny": ("red", ("2021:07:04 21:00:00", "-04:00", (40.6892, -74.0445), "Canon", "EOS R")),
    "home": ("red", ("2018:03:03 08:00:00", None, None, "Canon", "EOS 5D")),
    "home2": ("red", None),  # no EXIF at all: the file's date, no camera, no position
}
FILE_DATE = datetime(2015, 5, 5, 12, 0, 0).timestamp()


@pytest.fixture(scope="module")
def facts_lib(tmp_path_factory, model_args):
    """Two photos in each folder of TREE, indexed; a class "red" learned."""
    from tests.conftest import CLI

    tmp = tmp_path_factory.mktemp("facts_cli")
    root = tmp / "photos"
    expect: dict[str, dict] = {}
    for k, (folder, (kind, exif)) in enumerate(TREE.items()):
        for j in range(2):
            path = root / folder / f"img{j}.jpg"
            make_photo(path, kind, seed=10 * k + j)
            if exif is None:
                os.utime(path, (FILE_DATE, FILE_DATE))
                expect[str(path)] = {"taken": "2015-05-05T12:00:00", "lat": None, "camera": ""}
                continue
            taken, offset, gps, make, model = exif
            with Image.open(path) as im:
                im.load()
                im.save(
                    path,
                    exif=make_exif(taken=taken, offset=offset, gps=gps, make=make, model=model),
                )
            expect[str(path)] = {
                "taken": taken.replace(":", "-", 2).replace(" ", "T"),
                "offset": offset,
                "lat": gps[0] if gps else None,
                "lon": gps[1] if gps else None,
                "camera": f"{make} {model}",
            }
    cli = CLI(tmp / "library")
    cli("index", str(root), *model_args)
    reds = sorted((root / "trip" / "paris").glob("*.jpg"))
    cli("learn", "red", str(reds[0]))
    return cli, root, expect


def brute(rows: list[dict], expect: dict[str, dict], f: Filters) -> list[str]:
    out = []
    for r in rows:
        e = expect[r["path"]]
        if f.after and not e["taken"] >= f.after:
            continue
        if f.before and not e["taken"] < f.before:
            continue
        if f.camera and f.camera.lower() not in e["camera"].lower():
            continue
        if f.under and not r["path"].startswith(f.under + os.sep):
            continue
        if f.near and (
            e["lat"] is None or distance_km(f.near, [e["lat"]], [e["lon"]])[0] > f.within_km
        ):
            continue
        out.append(r["path"])
    return out


def test_status_counts_dates_and_positions(facts_lib) -> None:
    cli, _, _ = facts_lib
    status = cli.json("status")
    assert status["images"] == 12
    assert status["with_date"] == 10  # EXIF dates; home2 has its file's date only
    assert status["with_file_date"] == 2
    assert status["with_position"] == 8


def test_find_json_has_dates_with_their_offsets(facts_lib) -> None:
    cli, root, expect = facts_lib
    rows = cli.json("find", "red", "--min-prob", "0")
    assert len(rows) == 12
    for r in rows:
        e = expect[r["path"]]
        offset = e.get("offset")
        if e["taken"].startswith("2015"):  # the file's date, in this machine's zone
            assert r["taken"].startswith("2015-05-05T12:00:00")
        else:
            assert r["taken"] == e["taken"] + (offset or "")


@pytest.mark.parametrize(
    "args",
    [
        ["--after", "2019"],
        ["--after", "2019-06-02", "--before", "2021"],
        ["--before", "2019"],
        ["--camera", "canon"],
        ["--camera", "EOS 5"],
        ["--near", "48.85,2.35", "--within", "20"],
        ["--near=-33.87,151.2"],  # south and east: the default 10 km
        ["--near", "-22.9,-43.2", "--within", "50"],  # south and west
        ["--near", "40.7,-74.0", "--within", "5000"],
        ["--after", "2018", "--camera", "canon", "--near", "45,-30", "--within", "6000"],
    ],
)
def test_filtered_find_equals_a_brute_force_filter_of_a_full_scan(facts_lib, args) -> None:
    cli, root, expect = facts_lib
    every = cli.json("find", "red", "--min-prob", "0")
    f = _filters(args)
    want = brute(every, expect, f)
    got = cli.json("find", "red", "--min-prob", "0", *args)
    assert [r["path"] for r in got] == want
    assert want  # each case keeps some
    top2 = cli.json("find", "red", "--top", "2", *args)
    ranked = cli.json("find", "red", "--top", str(len(every)))  # re-ranked near the cut
    assert [r["path"] for r in top2] == brute(ranked, expect, f)[:2]
    photo = want[-1]
    near = cli.json("similar", photo, "--top", "3", *args)
    others = [r["path"] for r in cli.json("similar", photo, "--top", "11")]
    assert [r["path"] for r in near] == [p for p in others if p in set(want)][:3]


def _filters(args: list[str]) -> Filters:
    kw: dict = {}
    it = iter(a for part in args for a in part.split("=", 1))
    names = {"--after": "after", "--before": "before", "--camera": "camera", "--near": "near"}
    for flag in it:
        value = next(it)
        if flag == "--within":
            kw["within_km"] = float(value)
        else:
            kw[names[flag]] = value
    return Filters(**kw)


def test_under_a_folder_leaves_out_its_sibling_prefix_folder(facts_lib) -> None:
    cli, root, _ = facts_lib
    got = [
        r["path"] for r in cli.json("find", "red", "--min-prob", "0", "--under", str(root / "home"))
    ]
    assert sorted(got) == sorted(str(p) for p in (root / "home").glob("*.jpg"))


def test_sort_by_date_oldest_first(facts_lib) -> None:
    cli, _, _ = facts_lib
    rows = cli.json("find", "red", "--min-prob", "0", "--sort", "date")
    dates = [r["taken"][:19] for r in rows]
    assert dates == sorted(dates) and dates[0].startswith("2015")
    text = cli("find", "red", "--top", "3", "--sort", "date").stdout.splitlines()
    assert len(text) == 3 and all(line.split()[1][:4].isdigit() for line in text)


def test_print0_for_xargs(facts_lib) -> None:
    cli, root, _ = facts_lib
    out = cli("find", "red", "--min-prob", "0", "--under", str(root / "trip"), "--print0")
    paths = out.stdout_bytes.split(b"\0")
    assert paths[-1] == b"" and len(paths) == 9
    assert all(os.path.isfile(p) for p in paths[:-1])


def test_export_copies_with_clashes_and_again_adds_nothing(facts_lib, tmp_path: Path) -> None:
    cli, root, _ = facts_lib
    album = tmp_path / "album"
    first = cli("find", "red", "--min-prob", "0", "--after", "2019", "--copy", str(album))
    names = sorted(p.name for p in album.iterdir())
    assert names == ["img0-1.jpg", "img0-2.jpg", "img0-3.jpg", "img0.jpg"] + [
        "img1-1.jpg",
        "img1-2.jpg",
        "img1-3.jpg",
        "img1.jpg",
    ]
    assert "copied 8 photos" in first.stderr
    again = cli("find", "red", "--min-prob", "0", "--after", "2019", "--copy", str(album))
    assert "copied 0 photos" in again.stderr and "8 already there" in again.stderr
    assert len(list(album.iterdir())) == 8
    links = tmp_path / "links"
    cli("find", "red", "--top", "2", "--link", str(links))
    assert all(p.is_symlink() for p in links.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--after", "2019-13-01"], "--after: cannot read"),
        (["--before", "soon"], "--before: cannot read"),
        (["--near", "95,10"], "off the globe"),
        (["--near", "48.8;2.3;1"], "LAT,LON"),
        (["--within", "5"], "--near"),
        (["--under", "/no/such/folder"], "no such folder"),
        (["--sort", "name"], "--sort"),
        (["--json", "--print0"], "--print0"),
        (["--copy", "A", "--link", "B"], "choose one"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(facts_lib, args, message) -> None:
    cli, _, _ = facts_lib
    result = cli("find", "red", *args, ok=False)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_an_export_target_that_is_a_file_is_refused(facts_lib, tmp_path: Path) -> None:
    cli, _, _ = facts_lib
    target = tmp_path / "album.jpg"
    target.write_bytes(b"x")
    result = cli("find", "red", "--copy", str(target), ok=False)
    assert result.exit_code != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "is a file" in result.stderr
    assert target.read_bytes() == b"x"


def test_tag_writes_sidecars_and_never_the_photos(facts_lib) -> None:
    cli, root, _ = facts_lib
    photos = sorted((root / "trip").rglob("*.jpg"))
    before = {p: p.read_bytes() for p in photos}
    dry = cli("tag", "red", "--min-prob", "0", "--under", str(root / "trip"), "--dry-run")
    assert len(dry.stdout.splitlines()) == 8 and all(
        line.startswith("would create") for line in dry.stdout.splitlines()
    )
    assert not list(root.rglob("*.xmp"))
    done = cli.json("tag", "red", "--min-prob", "0", "--under", str(root / "trip"))
    assert sorted(d["sidecar"] for d in done) == sorted(f"{p}.xmp" for p in photos)
    assert all("<rdf:li>red</rdf:li>" in Path(d["sidecar"]).read_text() for d in done)
    assert {p: p.read_bytes() for p in photos} == before
    again = cli.json("tag", "red", "--min-prob", "0", "--under", str(root / "trip"))
    assert {d["action"] for d in again} == {"has"}
    for p in photos:
        Path(f"{p}.xmp").unlink()


def test_a_library_indexed_before_gets_its_facts_without_re_embedding(facts_lib) -> None:
    cli, root, _ = facts_lib
    db = sqlite3.connect(cli.library / "catalog.db")
    with db:
        db.execute(
            "UPDATE images SET taken = NULL, taken_offset = NULL, date_source = NULL, "
            "camera_id = NULL, lens = NULL, lat = NULL, lon = NULL, width = NULL, height = NULL"
        )
    db.close()
    assert cli.json("status")["with_date"] == 0
    assert cli.json("find", "red", "--min-prob", "0", "--camera", "canon") == []
    summary = cli.json("index", str(root))
    assert summary["embedded"] == 0 and summary["facts_read"] == 12
    status = cli.json("status")
    assert (status["with_date"], status["with_position"]) == (10, 8)
    assert len(cli.json("find", "red", "--min-prob", "0", "--camera", "canon")) == 6
    assert cli.json("index", str(root))["facts_read"] == 0
