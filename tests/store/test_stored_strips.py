"""The strips a class offered (schema 9, ``store/strips.py``): the migration from the version
before, what a strip records, and what a class's rename and forget do to them."""

from __future__ import annotations

from pathlib import Path

from finder.store.catalog import SCHEMA_VERSION, Catalog
from tests.store.old_catalog import catalog_before


def test_a_catalog_from_before_strips_keeps_its_classes_and_gains_strips(tmp_path: Path) -> None:
    conn, db = catalog_before(tmp_path / "catalog.db", "``store/strips.py``")
    conn.commit()
    conn.close()
    cat = Catalog(tmp_path / "catalog.db")
    assert cat.get_meta("schema_version") == SCHEMA_VERSION
    assert cat.get_class("cat")["threshold"] == 0.4
    assert cat.strip_offers("cat") == [] and cat.last_strip("cat") is None
    assert cat.add_strip("cat", [(5, None, True), (9, 0.25, False)], at=10.0) == 0
    cat.close()


def test_strips_are_numbered_per_class_and_follow_a_rename_but_not_a_forget(
    tmp_path: Path,
) -> None:
    cat = Catalog(tmp_path / "catalog.db")
    cat.save_class("cat", {"threshold": 0.5}, "bb", 1, 0)
    assert cat.add_strip("cat", [(3, None, True), (4, 0.5, False)], at=1.0) == 0
    assert cat.add_strip("cat", [(4, 0.2, True), (6, None, False)], at=2.0) == 1
    assert cat.add_strip("dog", [(3, None, False)]) == 0
    offers = cat.strip_offers("cat")
    assert [(o.image_id, o.strip, o.chance, o.guess, o.offered) for o in offers] == [
        (3, 0, None, True, 1.0),
        (4, 0, 0.5, False, 1.0),
        (4, 1, 0.2, True, 2.0),
        (6, 1, None, False, 2.0),
    ]
    assert [o.random for o in cat.strip_offers("cat", 1)] == [True, False]
    assert cat.last_strip("cat") == 1
    cat.skip("cat", [4])  # "not sure", in both strips that offered it
    assert cat.skipped("cat") == {4} and cat.skipped("dog") == set()
    cat.skip("cat", [4], skipped=False)
    assert cat.skipped("cat") == set()
    cat.rename_class("cat", "kitty")
    assert cat.strip_offers("cat") == [] and len(cat.strip_offers("kitty")) == 4
    cat.forget_class("kitty")
    assert cat.strip_offers("kitty") == [] and cat.last_strip("kitty") is None
    assert len(cat.strip_offers("dog")) == 1
    cat.close()
