"""Duplicates in a library: byte-identical files, and near-duplicates (the same shot resized,
re-encoded, lightly cropped or edited). Finds and suggests; never deletes anything.

    groups = find_dupes(catalog, store, under="/photos/2019")

1. **Identical**: ``ok`` images sharing the catalog's content fingerprint (size plus the first
   and last 64 KiB, ``crawl.fingerprint``) are hashed in full (BLAKE2b) to confirm; each set of
   equal hashes is a group of kind ``"identical"``.
2. **Near**: pairs of images whose stored vectors have cosine similarity at least ``min_cosine``
   are candidates (:func:`candidate_pairs`: every pair of vectors compared in a small library,
   else pairs from the search index, :mod:`finder.act.candidates`). A candidate pair is
   confirmed by a perceptual check on pixels (:func:`signature`, :func:`correlation`): the
   vectors say "same content", the pixels say "same picture", so two different photos of one
   scene (or of one flower species) stay apart. Confirmed pairs are joined into groups of kind
   ``"near"``. Copies already in an identical group take part through one of them (the one it
   suggests keeping), so a near group lists distinct pictures. Videos are near-duplicates when
   their sampled frames line up (the same clip re-encoded: :mod:`finder.act.video_dupes`); their
   frames never join photos' groups.

Each group suggests one file to keep: the most pixels, then the oldest (date taken, from the
catalog's photo facts, else the modification time), then the shortest path. Files that vanished
or cannot be read since they were indexed are left out of the groups.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from finder.act import candidates
from finder.act.video_dupes import near_video_pairs
from finder.errors import DecodeError
from finder.ingest.files import open_regular
from finder.store.catalog import OK, Catalog, ImageRow

if TYPE_CHECKING:
    from finder.store.vectors import VectorStore

#: Cosine similarity of two vectors from which a pair is checked on pixels. Low enough that
#: edits which move a vector (crops, rotations, brightness) stay candidates with the backbones
#: finder offers; the pixel check decides.
MIN_COSINE = 0.80
#: The pixel check (see :func:`signature`): grey thumbnails of this side, cut from a decode of
#: ``SOURCE`` pixels a side, compared under these crops (kept fraction of each side) and turns.
THUMB = 32
SOURCE = 128
CROPS = (0.96, 0.92, 0.88)
TURNS = (-3.0, -1.5, 1.5, 3.0)  # degrees, with the two largest crops (a straightened photo)
#: Correlation of two images' best-matching views from which they are the same shot. On
#: ``scripts/bench_dupes.py`` the same shot edited scores 0.977 or more, different photos of one
#: flower species (centred, on a dark ground) up to 0.957.
MIN_CORRELATION = 0.965
#: Signatures kept in memory while confirming pairs (74 KB each), and pairs confirmed at a time.
CACHE = 1024
STEP = 256

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class DupeFile:
    """One file of a group."""

    path: str
    id: int
    bytes: int
    mtime_ns: int
    width: int | None = None  # pixels, as shown, when known
    height: int | None = None
    taken: str | None = None  # date taken (local time, "YYYY-MM-DDTHH:MM:SS"), else file date

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True)
class DupeGroup:
    """Files that are the same picture. ``files[0]`` is the one suggested to keep."""

    kind: str  # "identical" (same bytes) or "near" (same shot, other pixels)
    files: tuple[DupeFile, ...]
    similarity: float  # the lowest confirmed cosine similarity in the group (1.0: identical)

    @property
    def keep(self) -> DupeFile:
        return self.files[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "keep": self.keep.path,
            "similarity": round(self.similarity, 4),
            "files": [asdict(f) for f in self.files],
        }


# --- identical ------------------------------------------------------------------------------


def file_hash(path: str) -> str | None:
    """BLAKE2b of the whole file (hex), or None when it cannot be read."""
    h = hashlib.blake2b(digest_size=20)
    try:
        with open_regular(path) as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    except (DecodeError, OSError):
        return None
    return h.hexdigest()


def identical_sets(rows: Iterable[ImageRow]) -> list[list[ImageRow]]:
    """Sets of two or more rows whose files are byte-identical: same fingerprint, then the same
    full hash. Rows without a fingerprint are never in a set."""
    by_fp: dict[tuple[int, str], list[ImageRow]] = {}
    for r in rows:
        if r.fingerprint:
            by_fp.setdefault((r.size, r.fingerprint), []).append(r)
    out = []
    for same in by_fp.values():
        if len(same) < 2:
            continue
        by_hash: dict[str, list[ImageRow]] = {}
        for r in same:
            digest = file_hash(r.path)
            if digest is not None:
                by_hash.setdefault(digest, []).append(r)
        out.extend(g for g in by_hash.values() if len(g) > 1)
    return out


# --- the pixel check ------------------------------------------------------------------------


def _views() -> list[tuple[float, tuple[float, float, float, float]]]:
    """(turn in degrees, crop box on the ``SOURCE`` square) of every view a signature holds:
    the whole image; crops keeping ``CROPS`` of each side, at the 9 placements (corners, edge
    middles, centre); and centred crops turned by ``TURNS``."""
    n = float(SOURCE)
    out: list[tuple[float, tuple[float, float, float, float]]] = [(0.0, (0.0, 0.0, n, n))]
    for keep in CROPS:
        side, margin = keep * n, (1 - keep) * n
        for fy in (0.0, 0.5, 1.0):
            for fx in (0.0, 0.5, 1.0):
                x, y = fx * margin, fy * margin
                out.append((0.0, (x, y, x + side, y + side)))
    for turn in TURNS:
        for keep in CROPS[1:]:
            side, m = keep * n, (1 - keep) * n / 2
            out.append((turn, (m, m, m + side, m + side)))
    return out


VIEWS = _views()


def _filter(lo: float, hi: float) -> np.ndarray:
    """(``THUMB``, ``SOURCE``) weights resampling the span [lo, hi) of ``SOURCE`` pixels to
    ``THUMB`` with an antialiased triangle filter (what Pillow's BILINEAR does when reducing)."""
    scale = (hi - lo) / THUMB
    centres = lo + (np.arange(THUMB) + 0.5) * scale
    x = np.arange(SOURCE) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs(x[None, :] - centres[:, None]) / max(scale, 1.0))
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _filters() -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """For each turn, the row and column filters of its views, stacked."""
    out: dict[float, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for turn, (x0, y0, x1, y1) in VIEWS:
        rows, cols = out.setdefault(turn, ([], []))
        rows.append(_filter(y0, y1))
        cols.append(_filter(x0, x1).T)
    return {t: (np.stack(r), np.stack(c)) for t, (r, c) in out.items()}


_FILTERS = _filters()


def signature(path: str) -> np.ndarray:
    """The pixel signature of an image: for each of ``VIEWS`` (the whole image, light crops at
    every placement, slightly turned centre crops), a ``THUMB`` x ``THUMB`` grey thumbnail,
    blurred, with zero mean and unit norm; float32 ``(len(VIEWS), THUMB * THUMB)``.

    Decoded once, small (``load_rgb`` squashes to ``SOURCE`` pixels a side, with DCT scaling for
    JPEG). Two images are compared by the best correlation between any view of one and any view
    of the other (:func:`correlation`): a crop or a straightening of a photo lines up with one of
    its views, while brightness and contrast changes do not move a correlation. Raises
    ``DecodeError``."""
    from PIL import Image

    from finder.ingest.decode import load_rgb

    rgb = load_rgb(path, (SOURCE, SOURCE)).astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    parts = []
    for turn, (rows, cols) in _FILTERS.items():
        src = grey
        if turn:
            im = Image.fromarray(grey, "F").rotate(turn, Image.Resampling.BILINEAR)
            src = np.asarray(im)
        parts.append(rows @ src @ cols)  # (views, THUMB, THUMB)
    stack = np.concatenate(parts)
    pad = np.pad(stack, ((0, 0), (1, 1), (1, 1)), mode="edge")  # a 3x3 binomial blur
    stack = (pad[:, :-2] + 2 * pad[:, 1:-1] + pad[:, 2:]) / 4
    stack = (stack[:, :, :-2] + 2 * stack[:, :, 1:-1] + stack[:, :, 2:]) / 4
    flat = stack.reshape(len(stack), -1)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)
    return flat


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The best correlation between a view of signature ``a`` and a view of ``b``."""
    return float((a @ b.T).max())


def same_shot(a: np.ndarray, b: np.ndarray, min_correlation: float = MIN_CORRELATION) -> bool:
    """True when two signatures are of the same picture."""
    return correlation(a, b) >= min_correlation


# --- near -----------------------------------------------------------------------------------


class _Sets:
    """Union-find over image ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]


def candidate_pairs(
    store: VectorStore,
    ids: Sequence[int],
    *,
    min_cosine: float = MIN_COSINE,
    within: Sequence[int] | None = None,
    exact_below: int = candidates.EXACT_BELOW,
) -> dict[tuple[int, int], float]:
    """Every pair (a < b) of ``ids`` (with ``within``: with at least one of those) whose stored
    vectors have cosine similarity >= ``min_cosine``, with it (:func:`candidates.near_pairs`:
    all pairs compared while the library is small, else candidates from the search index)."""
    found = candidates.near_pairs(
        store, np.asarray(ids, dtype=np.int64), min_cosine, within=within, exact_below=exact_below
    )
    return found.as_dict()


def confirm_pairs(
    pairs: dict[tuple[int, int], float],
    paths: dict[int, str],
    *,
    min_correlation: float = MIN_CORRELATION,
    sign: Callable[[str], np.ndarray] = signature,
    workers: int | None = None,
) -> dict[tuple[int, int], float]:
    """The pairs whose pixels pass :func:`same_shot`. Pairs are taken in order, ``STEP`` at a
    time; the signatures a step needs are computed on ``workers`` threads (decoding and numpy
    release the GIL) and the last ``CACHE`` are kept, so each image is decoded about once."""
    from finder.embed.runtime import cpu_count

    def safe(i: int) -> np.ndarray | None:
        try:
            return sign(paths[i]).astype(np.float16)
        except DecodeError:
            return None

    cache: OrderedDict[int, np.ndarray | None] = OrderedDict()
    items = sorted(pairs.items())
    out = {}
    with ThreadPoolExecutor(workers or cpu_count()) as pool:
        for start in range(0, len(items), STEP):
            chunk = items[start : start + STEP]
            for i in {i for pair, _ in chunk for i in pair}:
                if i in cache:
                    cache.move_to_end(i)
            need = sorted({i for pair, _ in chunk for i in pair} - cache.keys())
            cache.update(zip(need, pool.map(safe, need), strict=True))
            for (a, b), cos in chunk:
                sa, sb = cache[a], cache[b]
                if sa is not None and sb is not None:
                    if same_shot(sa.astype(np.float32), sb.astype(np.float32), min_correlation):
                        out[(a, b)] = cos
            while len(cache) > CACHE:
                cache.popitem(last=False)
    return out


# --- groups ---------------------------------------------------------------------------------


def _files(catalog: Catalog, rows: Sequence[ImageRow]) -> list[DupeFile]:
    """The files of ``rows`` with their size in pixels and date taken: from the catalog, else
    (facts never read) from the file's header."""
    from finder.ingest.decode import read_facts
    from finder.ingest.facts import file_date
    from finder.store.facts import sizes_and_dates

    known = sizes_and_dates(catalog, [r.id for r in rows])
    out = []
    for r in rows:
        width, height, taken = known.get(r.id, (None, None, None))
        if r.id not in known:
            try:
                facts = read_facts(r.path)
                width, height, taken = facts.width, facts.height, facts.taken
            except DecodeError:
                pass
        taken = taken or file_date(r.mtime_ns)[0]
        out.append(DupeFile(r.path, r.id, r.size, r.mtime_ns, width, height, taken))
    return out


def _keep_first(files: Iterable[DupeFile]) -> tuple[DupeFile, ...]:
    """Most pixels first, then the oldest (date taken, else modification time), then the
    shortest path (then the path, for a stable order)."""
    return tuple(
        sorted(files, key=lambda f: (-f.pixels, f.taken or "~", f.mtime_ns, len(f.path), f.path))
    )


def _identical(
    catalog: Catalog, rows: dict[int, ImageRow], inside: set[int] | None
) -> list[DupeGroup]:
    """The identical groups with a member in ``inside`` (every group when None), whole."""
    pool: Iterable[ImageRow] = rows.values()
    if inside is not None:
        keys = {(rows[i].size, rows[i].fingerprint) for i in inside if rows[i].fingerprint}
        pool = [r for r in rows.values() if (r.size, r.fingerprint) in keys]
    out = []
    for same in identical_sets(pool):
        if inside is None or any(r.id in inside for r in same):
            out.append(DupeGroup("identical", _keep_first(_files(catalog, same)), 1.0))
    return out


def _near(
    catalog: Catalog,
    store: VectorStore,
    rows: dict[int, ImageRow],
    ids: list[int],
    start: list[int] | None,
    *,
    min_cosine: float,
    min_correlation: float,
    exact_below: int,
) -> list[DupeGroup]:
    """Near-duplicate groups among ``ids``; with ``start``, only the groups holding one of
    those, whole: the pairs of ``start`` are found and confirmed, then those of the images
    they brought in, until no new image joins."""
    sets = _Sets()
    confirmed: dict[tuple[int, int], float] = {}
    paths = {i: rows[i].path for i in ids}
    asked: set[int] = set()
    checked: set[tuple[int, int]] = set()  # pairs whose pixels were compared
    frontier = None if start is None else sorted(set(start) & set(ids))
    while frontier is None or frontier:
        pairs = candidate_pairs(
            store, ids, min_cosine=min_cosine, within=frontier, exact_below=exact_below
        )
        pairs = {p: c for p, c in pairs.items() if p not in checked}
        checked.update(pairs)
        with threadpool_limits(1):  # many tiny products: threads only fight
            new = confirm_pairs(pairs, paths, min_correlation=min_correlation)
        confirmed.update(new)
        for a, b in new:
            sets.union(a, b)
        if frontier is None:
            break
        asked.update(frontier)
        frontier = sorted({i for pair in new for i in pair} - asked)
    return _groups(catalog, rows, sets, confirmed)


def _near_videos(
    catalog: Catalog,
    store: VectorStore,
    rows: dict[int, ImageRow],
    ids: list[int],
    start: list[int] | None,
) -> list[DupeGroup]:
    """Near-duplicate videos among ``ids`` (no vector of their own: the same clip re-encoded,
    where their frames line up, :mod:`finder.act.video_dupes`); with ``start``, only the
    groups holding one of those, whole. Their frames never join photos' groups."""
    videos = list(catalog.durations(ids)) if ids else []
    confirmed = near_video_pairs(catalog, store, videos)
    sets = _Sets()
    for a, b in confirmed:
        sets.union(a, b)
    if start is not None:
        wanted = {sets.find(i) for i in start if i in sets.parent}
        confirmed = {p: c for p, c in confirmed.items() if sets.find(p[0]) in wanted}
        kept = _Sets()
        for a, b in confirmed:
            kept.union(a, b)
        sets = kept
    return _groups(catalog, rows, sets, confirmed)


def _groups(
    catalog: Catalog,
    rows: dict[int, ImageRow],
    sets: _Sets,
    confirmed: dict[tuple[int, int], float],
) -> list[DupeGroup]:
    """The near groups of ``sets``, each with the lowest similarity of its confirmed pairs."""
    lowest: dict[int, float] = {}
    for (a, _), cos in confirmed.items():
        root = sets.find(a)
        lowest[root] = min(lowest.get(root, 1.0), cos)
    return [
        DupeGroup(
            "near",
            _keep_first(_files(catalog, [rows[i] for i in members])),
            lowest[sets.find(members[0])],
        )
        for members in sets.groups()
    ]


def find_dupes(
    catalog: Catalog,
    store: VectorStore,
    under: str | None = None,
    *,
    min_cosine: float = MIN_COSINE,
    min_correlation: float = MIN_CORRELATION,
    exact_below: int = candidates.EXACT_BELOW,
) -> list[DupeGroup]:
    """Groups of identical files, then of near-duplicates, among the ``ok`` images; with
    ``under`` (a folder), the groups with at least one file in it or below, each shown whole
    (its other files may be elsewhere, and the one to keep is chosen over all of them). Each
    group's first file is the one to keep. Groups are sorted by the path of that file.
    ``exact_below``: up to this many images, candidate pairs come from comparing every pair of
    vectors, else from the search index (:mod:`finder.act.candidates`)."""
    rows = {r.id: r for r in catalog.rows_under(os.sep) if r.status == OK}
    inside = None
    if under is not None:
        inside = {r.id for r in catalog.rows_under(under) if r.status == OK}
    identical = _identical(catalog, rows, inside)
    stands_for = {f.id: g.files[0].id for g in identical for f in g.files[1:]}
    ids = np.asarray([i for i in rows if i not in stands_for], dtype=np.int64)
    live = ids[store.has(ids)].tolist() if len(ids) else []
    start = None if inside is None else sorted({stands_for.get(i, i) for i in inside})
    near = _near(
        catalog,
        store,
        rows,
        live,
        start,
        min_cosine=min_cosine,
        min_correlation=min_correlation,
        exact_below=exact_below,
    )
    near += _near_videos(catalog, store, rows, ids.tolist(), start)
    if inside is not None:
        near = [_one_of_each_copy(catalog, g) for g in near]
    return sorted(identical + near, key=lambda g: (g.keep.path, g.kind))


def _one_of_each_copy(catalog: Catalog, group: DupeGroup) -> DupeGroup:
    """The near group with byte-identical files outside the folder asked about (their
    identical group is not shown) taking part through the one their group keeps, as in a run
    over the whole library."""
    rows = catalog.rows_by_id([f.id for f in group.files])
    drop = set()
    for same in identical_sets(rows.values()):
        drop.update(f.id for f in _keep_first(_files(catalog, same))[1:])
    if not drop:
        return group
    return DupeGroup("near", tuple(f for f in group.files if f.id not in drop), group.similarity)
