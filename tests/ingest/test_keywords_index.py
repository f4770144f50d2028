"""Keywords end to end through ``finder index``: sidecars in each naming and flavour, keywords
embedded in the JPEG, a malformed sidecar (reported, ignored, never rewritten), a sidecar edited,
removed, added or moved (read again, nothing re-embedded), ``status --json``, an old library,
a repaired catalog. A real backbone, SQLite and FAISS."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from finder.library import Library
from tests.conftest import CLI, make_photo
from tests.ingest.keyword_files import (
    MALFORMED,
    darktable_sidecar,
    digikam_sidecar,
    iptc_record,
    jpeg_with,
    lightroom_sidecar,
    photoshop_app13,
    xmp_app1,
)


def build(root: Path) -> dict[str, tuple[str, ...]]:
    """A tree of photos filed every way there is; the keywords each must end up with."""
    expect: dict[str, tuple[str, ...]] = {}

    def photo(rel: str, seed: int) -> Path:
        return make_photo(root / rel, "red" if seed % 2 else "blue", seed=seed)

    p = photo("dk/rex.jpg", 1)  # digiKam: photo.jpg.xmp
    Path(f"{p}.xmp").write_text(digikam_sidecar(["Animals/Pets/Rex", "Places/Paris"]))
    expect[str(p)] = ("Animals|Pets|Rex", "Places|Paris")
    p = photo("lr/cat.jpg", 2)  # Lightroom: photo.xmp
    p.with_suffix(".xmp").write_text(lightroom_sidecar(["Animals|Cat"], ["Cat", "Animals"]))
    expect[str(p)] = ("Animals|Cat",)
    p = photo("dt/gull.jpg", 3)  # darktable: its own tags are not keywords
    Path(f"{p}.xmp").write_text(darktable_sidecar(["Animals|Birds|Gulls"]))
    expect[str(p)] = ("Animals|Birds|Gulls",)
    p = jpeg_with(  # embedded: XMP and IPTC in the JPEG itself, and a sidecar beside it
        root / "emb" / "dog.jpg",
        xmp_app1(lightroom_sidecar(["Animals|Dog"], ["Dog"])),
        photoshop_app13(iptc_record(["Garden"])),
        seed=4,
    )
    Path(f"{p}.xmp").write_text(digikam_sidecar(["Events/Picnic"]))
    expect[str(p)] = ("Animals|Dog", "Events|Picnic", "Garden")
    p = photo("bad/broken.jpg", 5)  # a malformed sidecar
    Path(f"{p}.xmp").write_bytes(MALFORMED)
    expect[str(p)] = ()
    for k in range(3):
        expect[str(photo(f"plain/{k}.jpg", 10 + k))] = ()
    return expect


@pytest.fixture
def indexed(tmp_path: Path, model_args) -> tuple[CLI, Path, dict[str, tuple[str, ...]], dict]:
    root = tmp_path / "photos"
    expect = build(root)
    cli = CLI(tmp_path / "library")
    summary = cli.json("index", str(root), *model_args, "-q")
    return cli, root, expect, summary


def keywords(library: Path) -> dict[str, tuple[str, ...]]:
    with Library(library) as lib:
        cat = lib.folder.open_catalog()
        rows = cat.db.execute("SELECT id, path FROM images WHERE status = 'ok'").fetchall()
        got = cat.keywords_by_image([i for i, _ in rows])
        return {os.fsdecode(p): tuple(got.get(i, ())) for i, p in rows}


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_every_flavour_read_at_the_first_index(indexed) -> None:
    cli, root, expect, summary = indexed
    assert summary["embedded"] == len(expect) and summary["failed"] == 0
    assert summary["sidecars_read"] == 5 and summary["sidecars_unreadable"] == 1
    assert keywords(cli.library) == expect
    status = cli.json("status")
    assert status["with_keywords"] == 4
    assert status["keywords"] == len({k for v in expect.values() for k in v})


def test_a_malformed_sidecar_is_reported_ignored_and_never_rewritten(
    tmp_path: Path, model_args
) -> None:
    root = tmp_path / "photos"
    build(root)
    bad = root / "bad" / "broken.jpg.xmp"
    before = digest(bad)
    cli = CLI(tmp_path / "library")
    result = cli("index", str(root), *model_args, "-q")
    assert "1 sidecar could not be read" in result.stderr and str(bad) in result.stderr
    assert "not valid XML" in result.stderr
    with Library(cli.library) as lib:
        notes = lib.folder.open_catalog().sidecar_notes()
        assert [(p, n.split(" (")[0]) for p, n in notes] == [
            (str(root / "bad" / "broken.jpg"), "sidecar not valid XML")
        ]
        assert lib.status()["images"] == 8  # the photo is indexed all the same
    again = cli.json("index", str(root), "-q")
    assert again["sidecars_read"] == 0  # unchanged: not read, not reported again
    bad.write_text(digikam_sidecar(["Fixed"]))
    fixed = cli.json("index", str(root), "-q")
    assert (fixed["sidecars_read"], fixed["sidecars_unreadable"], fixed["embedded"]) == (1, 0, 0)
    with Library(cli.library) as lib:
        assert lib.folder.open_catalog().sidecar_notes() == []
    assert keywords(cli.library)[str(root / "bad" / "broken.jpg")] == ("Fixed",)
    bad.write_bytes(MALFORMED)
    cli.json("index", str(root), "-q")
    assert digest(bad)[0] == before[0]  # never rewritten
    assert keywords(cli.library)[str(root / "bad" / "broken.jpg")] == ()


def test_a_keyword_removed_from_a_sidecar_then_a_reindex(indexed) -> None:
    cli, root, expect, _ = indexed
    rex = root / "dk" / "rex.jpg"
    sidecar = Path(f"{rex}.xmp")
    photo_before = digest(rex)
    sidecar.write_text(digikam_sidecar(["Places/Paris"]))  # Rex untagged
    summary = cli.json("index", str(root), "-q")
    assert summary["embedded"] == 0 and summary["facts_read"] == 0  # the photo is not read
    assert summary["sidecars_read"] == 1 and summary["unchanged"] == len(expect)
    got = keywords(cli.library)
    assert got[str(rex)] == ("Places|Paris",)
    with Library(cli.library) as lib:
        cat = lib.folder.open_catalog()
        assert cat.images_with_keyword("Animals|Pets|Rex") == []
        assert "Animals|Pets" not in {c.path for c in cat.keyword_counts()}
        assert len(cat.images_with_keyword("Animals")) == 3  # cat, gull, dog
    assert digest(rex) == photo_before


def test_a_sidecar_removed_added_or_renamed(indexed) -> None:
    cli, root, expect, _ = indexed
    cat_photo = root / "lr" / "cat.jpg"
    cat_photo.with_suffix(".xmp").unlink()
    plain = root / "plain" / "0.jpg"
    Path(f"{plain}.xmp").write_text(lightroom_sidecar(["Trips|Rio"], ["Rio", "Trips"]))
    summary = cli.json("index", str(root), "-q")
    assert summary["embedded"] == 0 and summary["sidecars_read"] == 1  # one read, one dropped
    got = keywords(cli.library)
    assert got[str(cat_photo)] == () and got[str(plain)] == ("Trips|Rio",)
    # photo.jpg.xmp beside photo.xmp: the long name wins, as `finder tag` writes it
    Path(f"{plain}.xmp").rename(plain.with_suffix(".xmp"))
    assert cli.json("index", str(root), "-q")["sidecars_read"] == 1
    assert keywords(cli.library)[str(plain)] == ("Trips|Rio",)
    Path(f"{plain}.xmp").write_text(digikam_sidecar(["Trips/Oslo"]))
    assert cli.json("index", str(root), "-q")["sidecars_read"] == 1
    assert keywords(cli.library)[str(plain)] == ("Trips|Oslo",)


def test_a_photo_moved_with_its_sidecar_keeps_its_vector(indexed) -> None:
    cli, root, expect, _ = indexed
    (root / "moved").mkdir()
    for name in ("rex.jpg", "rex.jpg.xmp"):
        (root / "dk" / name).rename(root / "moved" / name)
    summary = cli.json("index", str(root), "-q")
    # the same sidecar (name, size, time) came along: nothing to read
    assert (summary["moved"], summary["embedded"], summary["sidecars_read"]) == (1, 0, 0)
    moved = str(root / "moved" / "rex.jpg")
    assert keywords(cli.library)[moved] == expect[str(root / "dk" / "rex.jpg")]
    (root / "moved" / "rex.jpg").rename(root / "dk" / "rex.jpg")  # back, without its sidecar
    summary = cli.json("index", str(root), "-q")
    assert (summary["moved"], summary["embedded"]) == (1, 0)
    assert keywords(cli.library)[str(root / "dk" / "rex.jpg")] == ()


def test_a_library_indexed_before_keywords_reads_them_without_re_embedding(indexed) -> None:
    cli, root, expect, _ = indexed
    with sqlite3.connect(cli.library / "catalog.db") as db:  # what an older finder left
        db.execute("DELETE FROM image_keywords")
        db.execute("DELETE FROM keywords")
        db.execute("UPDATE images SET keywords_read = NULL, xmp_stamp = NULL, xmp_note = NULL")
    db.close()
    assert cli.json("status")["with_keywords"] == 0
    summary = cli.json("index", str(root), "-q")
    assert summary["embedded"] == 0 and summary["facts_read"] == len(expect)
    assert summary["sidecars_read"] == 5
    assert keywords(cli.library) == expect
    assert cli.json("index", str(root), "-q")["facts_read"] == 0


def test_a_repaired_catalog_reads_again_what_its_backup_does_not_match(indexed) -> None:
    cli, root, expect, _ = indexed
    rex = root / "dk" / "rex.jpg"
    Path(f"{rex}.xmp").write_text(digikam_sidecar(["Animals/Pets/Rex/Puppy"]))
    cli.json("index", str(root), "-q")
    backups = sorted((cli.library / "backups").iterdir())
    assert len(backups) == 2
    backups[-1].unlink()  # only the backup from before the edit is left
    with sqlite3.connect(cli.library / "catalog.db") as db:
        db.execute("UPDATE meta SET value = 'not json' WHERE key = 'dirty'")
    db.close()
    assert cli.json("repair")["restored"] == backups[0].name
    cli.json("index", str(root), "-q")
    got = keywords(cli.library)
    assert got[str(rex)] == ("Animals|Pets|Rex|Puppy",)  # not the backup's keyword rows
    assert {p: v for p, v in got.items() if p != str(rex)} == {
        p: v for p, v in expect.items() if p != str(rex)
    }


def test_tagging_then_indexing_reads_finders_own_keyword(indexed) -> None:
    cli, root, _, _ = indexed
    photo = root / "plain" / "1.jpg"
    cli("learn", "blue", str(photo))
    cli("tag", "blue", "--min-prob", "0", "--under", str(root / "plain"))
    summary = cli.json("index", str(root), "-q")
    assert summary["embedded"] == 0 and summary["sidecars_read"] == 3
    assert keywords(cli.library)[str(photo)] == ("finder|blue",)
    shutil.rmtree(root / "plain")
    cli.json("index", str(root), "-q")
    with Library(cli.library) as lib:
        assert lib.folder.open_catalog().images_with_keyword("finder") == []
