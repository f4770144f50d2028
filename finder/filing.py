"""Filing: classes made from what the person already filed, and finder filing the rest.

``learn_from_keywords`` makes a class of each keyword on at least ``min_photos`` photos (a
hierarchy's inner node, ``Flowers`` above ``Flowers|Daisy``, only with ``parents``), named by
its leaf (by its path where two share a leaf); ``learn_from_folders(root)`` one of each folder
under ``root``, its path relative to ``root`` the hierarchy. A class made so remembers where
it came from (``finder.store.filing``) and is trained from it each time: its filed photos the
examples, the photos filed under the classes learned beside it (not above or below it) the
counter-examples (a photo in one folder is not in its siblings), the person's own ✓ and ✗ over
both. Running the command again refreshes them: a class is trained again only when what it
learns from changed: its own examples, exactly (a filed photo added or taken away, another
backbone or seed: its digest; the person's marks retrain it as they are given), or its
counter-examples by more than ``MAX_DRIFT`` of them since it was trained (estimated from a
sketch of them, ``finder.store.filing.drift``), so that a photo filed or unfiled retrains its
own classes, not every sibling it is a counter-example of; a class whose keyword or folder
holds no photo any more, and which the person gave no ✓, is forgotten.

``suggest(name)`` is the photos not filed under the class (nor under its siblings, nor marked)
that its head puts at or above its cut, best first; siblings that exclude each other (the
folders learned together; the keywords below one parent) share the photos out: a photo is
suggested for the one whose head ranks it highest above its cut, and there the cut is lowered
(a class's probability counts its siblings' look-alikes as its wrong answers, and the siblings
take those) by ``EXCLUSIVE_SLACK`` as far as the siblings cover the photos not of the class
(``learn.filed.exclusive_slack``: less with two species filed among five unfiled ones).
``apply_suggestions`` writes a keyword class's own keyword (its hierarchy, into the sidecar:
``finder.act.xmp``) and remembers what it added; ``unapply`` takes exactly that back and marks
the photo ✗.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from finder.answers import Answers, Match
from finder.embed.identity import identity_key as _backbone_key
from finder.errors import Arg, FinderError, UsageError
from finder.folder import Folder
from finder.ingest.keywords import SEP, class_names, path_parts
from finder.learn.names import class_name
from finder.siblings import Siblings
from finder.store.catalog import OK
from finder.store.facts import Filters
from finder.store.filing import FOLDER, KEYWORD, FilingRecord, drift, folder_key
from finder.teach import Change, Mark, Teaching

DEFAULT_MIN = 5
#: Folders whose name says their photos are not filed (skipped by ``learn_from_folders``).
NOT_FILED = frozenset(
    {"unsorted", "unfiled", "inbox", "incoming", "import", "imports", "to sort", "todo", "misc"}
)
#: Keyword groups that are not a person's filing (``finder tag``'s own).
NOT_KEYWORDS = frozenset({"finder"})
MAX_DRIFT = 0.05
"""The share of a filed class's counter-examples that may change (photos filed under its
siblings, or no longer) before a refresh trains it again. A head already rests on a random
draw of its siblings' photos (at most ``MAX_COUNTER_EXAMPLES``: another seed draws others), so
5 % of them replaced changes it less than another draw would; and in a library of thousands of
keywords each changed photo is a counter-example of most classes. A choice, not a measure of
the heads' quality. Its own examples are never approximate: one filed photo more or less
retrains it."""


@dataclass
class FilingReport:
    """What a ``learn --from-keywords`` / ``--from-folders`` run did, by class name."""

    learned: list[str] = field(default_factory=list)  # new classes
    refreshed: list[str] = field(default_factory=list)  # trained again: their filing changed
    unchanged: list[str] = field(default_factory=list)  # nothing changed: not trained
    forgotten: list[str] = field(default_factory=list)  # their source holds no photo any more
    taken_over: list[str] = field(default_factory=list)  # classes of that name made otherwise


@dataclass(frozen=True)
class Planned:
    name: str
    key: str


class Filing:
    """Learning from filing and suggesting, for the library in ``folder`` (classes through
    ``teaching``, searches through ``answers``)."""

    def __init__(self, folder: Folder, teaching: Teaching, answers: Answers) -> None:
        self.folder = folder
        self.teaching = teaching
        self.answers = answers
        self.siblings = Siblings(folder, teaching)  # the exclusive siblings' share of a photo

    # -- learning -------------------------------------------------------------------------
    def learn_from_keywords(
        self,
        *,
        min_photos: int = DEFAULT_MIN,
        only: str | None = None,
        parents: bool = False,
        seed: int = 0,
    ) -> FilingReport:
        """Make or refresh a class of each keyword on at least ``min_photos`` photos (see the
        module docstring); ``only``: the keywords whose path, leaf or class name matches this
        shell pattern (any case)."""
        _check_min(min_photos)
        self.folder.require_indexed()
        catalog = self.folder.open_catalog()
        counts = _same_keywords_once(catalog, catalog.keyword_counts())
        names = class_names((c.path for c in counts), class_name)
        inner = {c.parent for c in counts if c.parent is not None}
        planned = [
            Planned(names[c.path], c.path)
            for c in counts
            if c.path in names
            and c.photos >= min_photos
            and path_parts(c.path)[0].lower() not in NOT_KEYWORDS
            and (parents or c.path not in inner)
            and _matches(only, c.path.replace(SEP, "/"), c.leaf, names[c.path])
        ]
        return self._learn(KEYWORD, planned, only, seed)

    def learn_from_folders(
        self,
        root: str,
        *,
        min_photos: int = DEFAULT_MIN,
        only: str | None = None,
        parents: bool = False,
        seed: int = 0,
    ) -> FilingReport:
        """Make or refresh a class of each folder under ``root`` holding at least
        ``min_photos`` photos (a folder with sub-folders of photos only with ``parents``;
        folders named as unsorted ones, ``NOT_FILED``, and what is below them, never)."""
        _check_min(min_photos)
        full = os.path.abspath(os.path.expanduser(os.fspath(root)))
        if not os.path.isdir(full):
            raise UsageError(f"no such folder: {root}")
        self.folder.require_indexed()
        catalog = self.folder.open_catalog()
        counts = [
            f
            for f in catalog.folder_counts(full)
            if f.folder and not any(p.lower() in NOT_FILED for p in f.folder.split("/"))
        ]
        inner = {f.folder.rsplit("/", 1)[0] for f in counts if "/" in f.folder}
        names = class_names((f.folder.replace("/", SEP) for f in counts), class_name, nodes=False)
        planned = [
            Planned(names[path], folder_key(full, f.folder))
            for f in counts
            if (path := f.folder.replace("/", SEP)) in names
            and f.photos >= min_photos
            and (parents or f.folder not in inner)
            and _matches(only, f.folder, f.folder.rsplit("/", 1)[-1], names[path])
        ]
        return self._learn(FOLDER, planned, only, seed, root=full)

    def _learn(
        self,
        source: str,
        planned: list[Planned],
        only: str | None,
        seed: int,
        root: str | None = None,
    ) -> FilingReport:
        report = FilingReport()
        catalog = self.folder.open_catalog()
        known = {f.name: f for f in catalog.filings()}
        alike = [f for f in known.values() if f.source == source and _under(f.key, root)]
        # every key's photos read once: each class's examples and counter-examples are drawn
        # from them, here and in its training (not its siblings' photos read again a class)
        draw = catalog.filed_draw(source, [p.key for p in planned] + [f.key for f in alike])
        mine = {
            f.name: f
            for f in alike
            if _matches(only, f.key.replace(SEP, "/"), path_parts(f.key)[-1], f.name)
        }
        by_name = {p.name: p for p in planned}
        for name, f in mine.items():  # made before and not planned now: refreshed while filed
            if name not in by_name and len(draw.ids(f.key)):
                by_name[name] = Planned(name, f.key)
        # the counter-examples come from every class filed the same way (--only or not)
        keys = {p.key for p in by_name.values()} | {f.key for f in alike if len(draw.ids(f.key))}
        info_key = _backbone_key(self.folder.require_indexed())
        for name in sorted(set(mine) - set(by_name)):  # its keyword or folder holds no photo
            if not any(label == 1 for _, label in self.teaching.examples(name)):
                self.teaching.forget(name)
                report.forgotten.append(name)
                continue
            by_name[name] = Planned(name, mine[name].key)
        changes: list[Change] = []
        ordered = sorted(keys)
        for name in sorted(by_name):
            key = by_name[name].key
            siblings = tuple(k for k in ordered if k != key and not _related(source, k, key))
            record = FilingRecord(name, source, key, siblings)
            before = self.folder.open_catalog().get_class(name)
            if before is not None and name not in known:
                report.taken_over.append(name)
            if before is not None and name in known and before["backbone"] == info_key:
                marked = self._marked(name)
                pos, neg = draw.filed_ids(record, marked, seed)
                if _fits(known[name], record.trained_on(name, pos, neg, info_key, seed)):
                    # what it was trained from is kept: the drift adds up from there
                    kept = replace(record, digest=known[name].digest, sketch=known[name].sketch)
                    if known[name] != kept:
                        writing = self.folder.open_catalog_for_writing()
                        with writing.transaction():  # filed otherwise, the same examples
                            writing.save_filing(kept)
                    report.unchanged.append(name)
                    continue
            changes.append(Change(name, seed=seed, filing=record, drawn=draw))
            (report.refreshed if before is not None else report.learned).append(name)
        self.teaching.apply_all(changes)  # trained on every core, written in order
        return report

    def _marked(self, name: str) -> dict[int, int]:
        return {m.id: m.label for m in self.teaching.marks(name) if m.id is not None}

    # -- suggesting -----------------------------------------------------------------------
    def filing(self, name: str) -> FilingRecord:
        """The filing of class ``name``; a UsageError when it was not made from one."""
        stored = self.teaching.class_record(name)["name"]
        record = self.folder.open_catalog().get_filing(stored)
        if record is None:
            raise UsageError(
                f"class {stored!r} was not made from keywords or folders; "
                f"its photos are found by find"
            )
        return record

    def suggest(
        self,
        name: str,
        *,
        top: int | None = None,
        min_prob: float | None = None,
        filters: Filters | None = None,
        sort: str = "score",
    ) -> list[Match]:
        """The photos finder believes are of filed class ``name`` and are not filed under it
        (see the module docstring), best first (or by date); ``top``, ``min_prob`` and
        ``filters`` as ``find`` takes them (without ``min_prob``: the class's cut, lowered by
        ``EXCLUSIVE_SLACK`` when it has exclusive siblings; a ``min_prob`` given is the cut)."""
        record = self.filing(name)
        if top is not None and top < 1:
            raise UsageError(Arg("top"), " must be at least 1")
        rivals = self.siblings.rivals(record)
        if rivals and min_prob is None:  # the cut lowered where no sibling takes the photo
            min_prob = self.siblings.min_prob(record, rivals)
        found = self.answers.find(record.name, min_prob=min_prob, filters=filters)
        if not found:
            return []
        catalog = self.folder.open_catalog()
        skip = set(catalog.source_ids(record.source, record.key).tolist())
        for key in record.siblings:
            skip.update(catalog.source_ids(record.source, key).tolist())
        skip.update(m.id for m in self.teaching.marks(record.name) if m.id is not None)
        written = set(catalog.written_paths(record.name))  # filed by finder, not read back yet
        kept = [m for m in found if m.id not in skip and m.path not in written]
        kept = self.siblings.keep(record, rivals, kept)
        if top is not None:
            kept = kept[:top]
        if sort == "date" and kept:
            ids = np.asarray([m.id for m in kept], dtype=np.int64)
            scores = np.asarray([m.score for m in kept])
            kept = self.answers.matches(ids, scores, sort)
        return kept

    def suggestion_counts(self) -> list[tuple[str, str, int]]:
        """(class, source, number of suggestions) of every filed class, by name."""
        return [
            (f.name, f.source, len(self.suggest(f.name)))
            for f in self.folder.open_catalog().filings()
        ]

    # -- writing back ---------------------------------------------------------------------
    def apply_suggestions(
        self, name: str, photos: Sequence[str], *, dry_run: bool = False
    ) -> tuple[list, list[str]]:
        """Write keyword class ``name``'s keyword, in its own hierarchy, into the sidecars of
        ``photos`` (``finder.act.xmp.file_keyword``; the photos never touched) and remember
        what was added. Returns (what was done to each, one line per sidecar left alone)."""
        from finder.act.xmp import file_keyword

        record = self.filing(name)
        if record.source != KEYWORD:
            raise UsageError(
                f"class {record.name!r} is a folder: its suggestions are filed by copying or "
                "linking them into it, never by moving them"
            )
        done, errors = [], []
        catalog = self.folder.open_catalog_for_writing() if not dry_run else None
        for photo in photos:
            try:
                tagged = file_keyword(photo, path_parts(record.key), dry_run=dry_run)
            except FinderError as e:
                errors.append(str(e))
                continue
            done.append(tagged)
            if catalog is not None and tagged.added:
                catalog.record_write(record.name, photo, tagged.sidecar, tagged.added)
        return done, errors

    def written(self, name: str) -> list[str]:
        """The photos into whose sidecars ``apply_suggestions`` wrote class ``name``'s keyword
        (and which it can take back), by path."""
        return self.folder.open_catalog().written_paths(self.filing(name).name)

    def confirmed(self, name: str) -> list[Match]:
        """The photos a folder class ``name`` was given ✓ on and that are not in its folder:
        those to copy or link into it (``file_confirmed``), in the order they were marked."""
        record = self.filing(name)
        if record.source != FOLDER:
            return []
        return [
            Match(m.path, 1.0, m.id)
            for m in self.teaching.marks(record.name)
            if m.label == 1 and m.id is not None and not _under(m.path, record.key)
        ]

    def file_confirmed(self, name: str, mode: str) -> list:
        """Copy (``mode`` ``copy``), link (``link``) or hard-link (``hardlink``) the photos
        ``confirmed`` for folder class ``name`` into its folder (``finder.act.export``: a name
        taken is given another, a file already there is left); never moved. Returns what was
        done to each."""
        from finder.act.export import export

        record = self.filing(name)
        if record.source != FOLDER:
            raise UsageError(
                f"class {record.name!r} is a keyword: its suggestions are filed by writing the "
                "keyword into their sidecars"
            )
        if mode not in ("copy", "link", "hardlink"):
            raise UsageError(Arg("mode"), f" must be copy, link or hardlink, not {mode!r}")
        photos = [m.path for m in self.confirmed(record.name)]
        return export(photos, record.key, mode) if photos else []

    def unapply(
        self, name: str, photos: Sequence[str], *, mark: bool = True
    ) -> tuple[list[str], list[str]]:
        """Take back what ``apply_suggestions`` wrote for class ``name`` into these photos'
        sidecars (only that), and mark each photo ✗ for the class (unless ``mark`` is False:
        a confirmation undone leaves the photo unjudged). Returns (the photos taken back, one
        line per photo for which nothing was)."""
        from finder.act.xmp import unfile_keyword

        record = self.filing(name)
        catalog = self.folder.open_catalog_for_writing()
        done, errors, marks = [], [], []
        for photo in photos:
            path = os.path.abspath(os.path.expanduser(os.fspath(photo)))
            written = catalog.written(record.name, path)
            if written is None:
                errors.append(f"finder wrote no keyword of {record.name!r} for {photo}")
                continue
            sidecar, added = written
            try:
                unfile_keyword(sidecar, added)
            except FinderError as e:
                errors.append(str(e))
                continue
            catalog.forget_write(record.name, path)
            row = catalog.image_by_path(path)
            marks.append(Mark(row.id if row is not None and row.status == OK else None, path, 0))
            done.append(path)
        if marks and mark:
            self.teaching.apply(Change(record.name, tuple(marks)))
        return done, errors


def _fits(trained: FilingRecord, now: FilingRecord) -> bool:
    """Whether the head trained from ``trained`` still fits the filing as it is ``now``: the
    same examples (digest) and counter-examples within ``MAX_DRIFT`` of those it was trained
    against (a sketch not known: it does not)."""
    return (
        trained.digest == now.digest
        and trained.sketch is not None
        and now.sketch is not None
        and drift(trained.sketch, now.sketch) <= MAX_DRIFT
    )


def _same_keywords_once(catalog, counts: list) -> list:
    """The keyword counts less each plain keyword (``Red``, as IPTC or ``dc:subject`` alone
    keep it) whose every photo also holds a path ending in it (``Shapes|Red``, from another
    source of the same photo): one keyword, as within one packet."""
    by_leaf: dict[str, list[str]] = {}
    for c in counts:
        if len(c.parts) > 1:
            by_leaf.setdefault(c.leaf.lower(), []).append(c.path)
    out = []
    for c in counts:
        longer = by_leaf.get(c.leaf.lower()) if len(c.parts) == 1 else None
        if longer:
            under = set().union(*(catalog.images_with_keyword(p) for p in longer))
            if set(catalog.images_with_keyword(c.path)) <= under:
                continue
        out.append(c)
    return out


def _under(key: str, root: str | None) -> bool:
    """Whether a filing's key is under the folders' ``root`` (any key when None)."""
    return root is None or key == root or key.startswith(root.rstrip(os.sep) + os.sep)


def _check_min(min_photos: int) -> None:
    if min_photos < 1:
        raise UsageError(Arg("min_photos"), " must be at least 1")


def _matches(pattern: str | None, *texts: str) -> bool:
    if pattern is None:
        return True
    p = pattern.lower()
    return any(fnmatch.fnmatchcase(t.lower(), p) for t in texts)


def _related(source: str, a: str, b: str) -> bool:
    """Whether one key is above the other (a folder and its sub-folder, a keyword node and a
    keyword below it): then neither is the other's counter-example."""
    sep = SEP if source == KEYWORD else os.sep
    return a.startswith(b + sep) or b.startswith(a + sep)
