"""The catalog's schema: its version and the step-by-step migrations (``MIGRATIONS[v]``
brings a catalog from version v to v + 1), and what each meta value must be."""

from __future__ import annotations

import json

import sqlite_utils

from finder.store import facts as stored_facts
from finder.store import filing as stored_filing
from finder.store import keywords as stored_keywords

SCHEMA_VERSION = 12

PENDING, OK, FAILED = "pending", "ok", "failed"

#: What each meta value must be; a value of another type is damage (a hand edit, a bad disk).
META_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "dirty": (bool,),
    "backbone": (dict,),
    "index_name": (str, type(None)),
    "memory_budget": (int, type(None)),
    "next_id": (int,),
    "journal_seq": (int,),  # the last change of the teaching journal the catalog holds
    "roots": (list,),  # the folders indexed (finder.roots)
}
#: Keys a backbone record must hold, with their types.
BACKBONE_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "dim": (int,),
    "fingerprint": (str,),
    "weights": (str,),
    "input_size": (list,),
}


#: Version 1 of the catalog, statement by statement, as SQLite keeps it in ``sqlite_master``
#: (the later versions are the migrations below).
_VERSION_1 = (
    """CREATE TABLE IF NOT EXISTS "images" (
   "id" INTEGER PRIMARY KEY,
   "path" BLOB NOT NULL,
   "size" INTEGER NOT NULL,
   "mtime_ns" INTEGER NOT NULL,
   "fingerprint" TEXT,
   "status" TEXT NOT NULL,
   "error" TEXT,
   "updated" REAL
)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS "idx_images_path"
    ON "images" ("path")""",
    """CREATE INDEX IF NOT EXISTS "idx_images_status"
    ON "images" ("status")""",
    """CREATE TABLE IF NOT EXISTS "classes" (
   "name" TEXT PRIMARY KEY,
   "head" TEXT,
   "backbone" TEXT,
   "threshold" REAL,
   "n_pos" INTEGER,
   "n_neg" INTEGER,
   "created" REAL,
   "updated" REAL
)""",
    """CREATE TABLE IF NOT EXISTS "examples" (
   "id" INTEGER PRIMARY KEY,
   "class_name" TEXT NOT NULL,
   "path" BLOB NOT NULL,
   "label" INTEGER NOT NULL,
   "vector" BLOB NOT NULL,
   "added" REAL
)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS "idx_examples_class_name_path"
    ON "examples" ("class_name", "path")""",
)


def _migrate_to_1(db: sqlite_utils.Database) -> None:
    for statement in _VERSION_1:
        db.execute(statement)


def _migrate_to_2(db: sqlite_utils.Database) -> None:
    """The class cut-off is stored once, in the head's JSON: the ``threshold`` column goes
    (a head that lacks one takes the column's value first)."""
    for name, head, threshold in db.execute("SELECT name, head, threshold FROM classes").fetchall():
        data = json.loads(head)
        if "threshold" not in data and threshold is not None:
            data["threshold"] = threshold
            db.execute("UPDATE classes SET head = ? WHERE name = ?", [json.dumps(data), name])
    if "threshold" in db["classes"].columns_dict:
        db.execute("ALTER TABLE classes DROP COLUMN threshold")


def _migrate_to_3(db: sqlite_utils.Database) -> None:
    """Photo facts: date taken, camera, lens, position, size (see ``finder.store.facts``)."""
    stored_facts.migrate(db)


def _migrate_to_4(db: sqlite_utils.Database) -> None:
    """A partial index of the rows without facts (pending, or indexed before facts were kept):
    an index run finds those it must read facts for without a scan of the library."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_images_no_facts ON images(path) WHERE date_source IS NULL"
    )


def _migrate_to_5(db: sqlite_utils.Database) -> None:
    """Filters answered from an index alone: positions by (lat, lon) (a ``--near`` box no
    longer reads each row of its latitude band), cameras by (camera_id, taken) (``--camera``
    with ``--after``/``--before`` in one range)."""
    db.execute("CREATE INDEX IF NOT EXISTS idx_images_position ON images(lat, lon)")
    db.execute("DROP INDEX IF EXISTS idx_images_lat")
    db.execute("CREATE INDEX IF NOT EXISTS idx_images_camera_taken ON images(camera_id, taken)")
    db.execute("DROP INDEX IF EXISTS idx_images_camera_id")


def _migrate_to_6(db: sqlite_utils.Database) -> None:
    """Videos (see ``finder.store.frames``): an image's ``kind`` ("photo", the rows so far, or
    "video"), a video's ``duration`` (seconds) and ``n_frames``; the ``frames`` table, one row
    per sampled frame: its vector's id, its video, its time (seconds); a partial index of the
    videos (few among many photos)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(images)")}
    for name, kind in (
        ("kind", "TEXT NOT NULL DEFAULT 'photo'"),
        ("duration", "REAL"),
        ("n_frames", "INTEGER"),
    ):
        if name not in have:
            db.execute(f"ALTER TABLE images ADD COLUMN {name} {kind}")
    db.execute(
        "CREATE TABLE IF NOT EXISTS frames ("
        "id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, time REAL NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS idx_frames_video ON frames(video_id, time)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_images_videos ON images(kind) WHERE kind != 'photo'")


def _migrate_to_7(db: sqlite_utils.Database) -> None:
    """Forgotten classes are kept 30 days (``finder restore``): ``forgotten`` holds each one's
    record as ``classes`` held it, with when it was forgotten, and ``forgotten_examples`` its
    marks as ``examples`` held them. Apart from the live tables, so that nothing that reads
    classes sees them, and a name forgotten can be learned anew (and forgotten again)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS forgotten (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " head TEXT, backbone TEXT, n_pos INTEGER, n_neg INTEGER, created REAL, updated REAL,"
        " forgotten_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS idx_forgotten_name ON forgotten(name, forgotten_at)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS forgotten_examples (id INTEGER PRIMARY KEY,"
        " forgotten_id INTEGER NOT NULL, path BLOB NOT NULL, label INTEGER NOT NULL,"
        " vector BLOB NOT NULL, added REAL)"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_forgotten_examples ON forgotten_examples(forgotten_id)"
    )


def _migrate_to_8(db: sqlite_utils.Database) -> None:
    """The images by status and when they last changed (``updated``: inserted, changed,
    embedded, failed): the photos embedded since a moment are an index range
    (``Catalog.ok_since``: the page's live updates), never a scan of the library."""
    db.execute("CREATE INDEX IF NOT EXISTS idx_images_status_updated ON images(status, updated)")


def _migrate_keywords(db: sqlite_utils.Database) -> None:
    """Keywords as facts: the ``keywords`` and ``image_keywords`` tables and the sidecar
    columns of ``images`` (see ``finder.store.keywords``); classes made from them and from
    folders, and what finder wrote into sidecars (``finder.store.filing``). Self-contained: it
    may take any place in the order."""
    stored_keywords.migrate(db)
    stored_filing.migrate(db)


def _migrate_strips(db: sqlite_utils.Database) -> None:
    """The strips a class offered (``store/strips.py``): each photo of each strip, finder's
    guess on it, when the person skipped it ("not sure": never offered again; NULL: not
    skipped), and for a photo drawn at random its chance of being drawn (NULL: chosen), so a
    mark given later, by the page or ``learn``, is known as a random draw's (the estimate of
    how good the answer is stands on those)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS strips (class_name TEXT NOT NULL, strip INTEGER NOT NULL,"
        " image_id INTEGER NOT NULL, chance REAL, guess INTEGER NOT NULL, offered REAL NOT NULL,"
        " skipped REAL, PRIMARY KEY (class_name, strip, image_id))"
    )
    db.execute("CREATE INDEX IF NOT EXISTS idx_strips_image ON strips(class_name, image_id)")


def _migrate_origins(db: sqlite_utils.Database) -> None:
    """Where each mark comes from (``origin`` of ``examples`` and ``forgotten_examples``:
    "example", "top", "strip" or "random", :mod:`finder.learn.origin`; NULL: not known, a mark
    given before origins were kept), so that ✓ given on photos finder ranked high do not
    size the class as the examples do. Self-contained: it may take any place in the order."""
    for table in ("examples", "forgotten_examples"):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "origin" not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN origin TEXT")


def _migrate_filing_sketch(db: sqlite_utils.Database) -> None:
    """A filed class's counter-examples as last trained against: the ``sketch`` column of
    ``filing`` (a bottom-k MinHash of their ids, ``finder.store.filing.sketch``), so that a
    refresh retrains a class whose counter-examples drifted by more than a small share, not
    each one a changed photo touches; the classes filed before have none (NULL) and are
    retrained at their next refresh. Self-contained: it may take any place in the order after
    the keywords' step."""
    stored_filing.migrate_sketch(db)


# Step-by-step migrations: MIGRATIONS[v] brings a catalog from version v to v + 1.
MIGRATIONS = [
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
    _migrate_to_5,
    _migrate_to_6,
    _migrate_to_7,
    _migrate_to_8,
    _migrate_keywords,
    _migrate_strips,
    _migrate_origins,
    _migrate_filing_sketch,
]
