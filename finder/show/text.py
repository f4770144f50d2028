"""What a person reads in a terminal: plain text made from the library's answers.

Pure functions, no I/O and no typer: the CLI prints what they return, the web page and scripts
can use them too. Paths are shown as the file system has them (undecodable bytes stay raw, as
``ls`` prints them in a pipe), except control characters, which are escaped as ``ls -b`` does:
a file named ``x\\n0.999  /etc/passwd.jpg`` cannot forge a second result line. ``--json``
output does not come through here: it stays exact.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from finder.errors import Arg, FinderError, flag, worded

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}
_NAMED |= {"\a": "\\a", "\\": "\\\\"}
_CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\\\]")


def escape(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1) and backslashes escaped, ``ls -b``
    style: ``\\n``, ``\\t``, ..., else ``\\ooo`` octal; everything else unchanged."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\{ord(m.group()):03o}"), text)


def path_bytes(path: str) -> bytes:
    """A path for the terminal: control characters escaped, undecodable bytes kept raw."""
    return os.fsencode(escape(path))


class _Scored(Protocol):
    path: str
    score: float


def match_lines(matches: Iterable[_Scored]) -> list[bytes]:
    """One line a match: the score (probability or similarity) then the path (a video's
    with its moment: ``clip.mp4 @ 0:12``)."""
    return [f"{m.score:.3f}  ".encode() + shown_match(m) for m in matches]


def shown_match(m: _Scored) -> bytes:
    """A match's path for the terminal; a video's followed by `` @ M:SS``, its moment."""
    from finder.library import format_time

    t = getattr(m, "time", None)
    return path_bytes(m.path) + (f" @ {format_time(t)}".encode() if t is not None else b"")


def index_summary_line(summary: Any) -> str:
    """The one line ``finder index`` ends with."""
    rate = summary.embedded / summary.seconds if summary.seconds > 0 else 0.0
    return (
        f"{'interrupted: ' if summary.interrupted else ''}"
        f"{summary.new} new, {summary.changed} changed, {summary.moved} moved, "
        f"{summary.deleted} deleted, {summary.unchanged} unchanged, {summary.failed} failed"
        f"{f', {summary.resumed} resumed' if getattr(summary, 'resumed', 0) else ''} "
        f"({summary.embedded} embedded in {summary.seconds:.1f}s, {rate:.1f} images/s)"
        + (f"; dates and places read for {n}" if (n := getattr(summary, "facts_read", 0)) else "")
    )


def batch_line(batch: Any) -> str:
    """One line per batch of changes taken in by ``finder index --watch``."""
    counts = [
        f"{n} {what}"
        for what in ("new", "changed", "moved", "deleted", "failed")
        if (n := getattr(batch, what))
    ]
    line = f"{time.strftime('%H:%M:%S')} {', '.join(counts) or 'nothing new'}"
    if batch.embedded:
        line += f" ({batch.embedded} embedded in {batch.seconds:.1f}s)"
    if batch.classes:
        line += "; now in " + ", ".join(f"{escape(n)} +{k}" for n, k in batch.classes.items())
    return line


def status_lines(info: Mapping[str, Any]) -> list[str]:
    """``finder status`` for a person (``--json`` gives every field)."""
    names = ", ".join(escape(n) for n in info["class_names"]) or "none"
    return [
        f"library   {escape(info['library'])}",
        f"images    {info['images']} indexed, {info['failed']} failed, {info['pending']} pending",
        f"backbone  {info['backbone'] or 'none yet (run finder index)'}",
        *([f"precision {b['precision']}"] if (b := info.get("backbone_info")) else []),
        f"index     {info['index'] or '-'}",
        f"classes   {info['classes']}: {names}",
        f"photos    {info.get('with_date', 0)} dated by EXIF, {info.get('with_file_date', 0)} by "
        f"their file, {info.get('with_position', 0)} with a GPS position",
        *(
            [f"offline   {info['offline']} photos, on {', '.join(map(escape, offline))}"]
            if (offline := info.get("offline_roots"))
            else []
        ),
    ]


def failure_lines(failures: Iterable[tuple[str, str]]) -> list[bytes]:
    return [path_bytes(path) + f"\t{escape(reason)}".encode() for path, reason in failures]


def repair_lines(report: Any) -> list[str]:
    """``finder repair``: what it did to the vectors, the images and the teaching (beyond the
    catalog's lines)."""
    out = []
    if report.vector_problems:
        out.append(f"vectors damaged: {'; '.join(report.vector_problems)}")
    if report.images_restored or report.images_found:
        out.append(
            f"images: {report.images_restored} put back from the image map, "
            f"{report.images_found} found under {', '.join(report.roots) or 'no recorded root'}"
        )
    teaching = report.teaching or {}
    if teaching.get("journal_problem"):
        out.append(f"teaching journal damaged: {teaching['journal_problem']}")
    if teaching.get("from_journal"):
        names = ", ".join(repr(n) for n in teaching["from_journal"])
        out.append(f"classes put back from the teaching journal: {names}")
    if teaching.get("removed"):
        names = ", ".join(repr(n) for n in teaching["removed"])
        out.append(f"classes removed (forgotten, says the teaching journal): {names}")
    if report.started_anew:
        out.append(f"library started anew: {report.started_anew}")
    return out


def class_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A class record as ``classes --json`` and ``learn --json`` print it (a contract)."""
    return {
        "name": record["name"],
        "examples": record["n_pos"],
        "negatives": record["n_neg"],
        "threshold": record["threshold"],
        "updated": record["updated"],
        "source": record.get("source"),  # "keyword", "folder" (filed), or null (taught)
    }


def learned_line(record: Mapping[str, Any]) -> str:
    return (
        f"learned {escape(record['name'])!r} from {record['n_pos']} examples and "
        f"{record['n_neg']} counter-examples (cut-off {record['threshold']:.2f})"
    )


def review_hint(name: str) -> str:
    """What to do next after a class is learned without counter-examples: ✓ on the photos
    `find` ranks first teach little, marks on `--review`'s teach most (docs/heads.md)."""
    import shlex

    q = shlex.quote(name)
    return (
        f"next: `finder find {q} --review 10` shows the photos whose ✓ or ✗ teach it most; "
        f"mark them with `finder learn {q} --add ✓… --not ✗…`"
    )


def empty_answer(
    name: str | None,
    *,
    threshold: float | None = None,
    min_prob: float | None = None,
    top: int | None = None,
    filtered: bool = False,
    review: bool = False,
) -> str:
    """What ``find NAME`` (``similar`` when ``name`` is None, ``--review``, ``tag``) says on
    stderr when its answer is empty: why, and what would show photos."""
    among = " among the photos that pass the filters" if filtered else ""
    if review:
        return f"no photo of {escape(name or '')} left to review: those near its cut-off are marked"
    if name is None or (top is not None and min_prob is None):
        return "no photo passes the filters" if filtered else "no other photo in the library"
    hint = "; --top 20 shows the best anyway"
    if min_prob is not None:
        return f"no photo of {escape(name)} at or above {min_prob:g}{among}{hint}"
    return f"no photo of {escape(name)} above the cut-off {threshold:.2f}{among}{hint}"


def class_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    if not records:
        return ["no classes yet: teach one with `finder learn NAME EXAMPLE...`"]
    return [
        f"{escape(r['name'])}\t{r['n_pos']} examples\t{r['n_neg']} counter-examples\t"
        f"cut-off {r['threshold']:.2f}"
        for r in records
    ]


def example_lines(rows: Iterable[tuple[str, int]]) -> list[bytes]:
    return [(b"+ " if label else b"- ") + path_bytes(path) for path, label in rows]


FLAGS = {"n": "--review", "negatives": "--not", "within_km": "--within", "min_photos": "--min"}
"""The library's arguments whose flag is not ``--`` and their name with dashes."""


def flag_of(arg: Arg) -> str:
    """An argument of the library as the command line names it: its flag (``min_prob`` →
    ``--min-prob``, ``negatives`` → ``--not``)."""
    return FLAGS.get(arg.name) or flag(arg)


def error_line(error: FinderError) -> str:
    """One of our errors as the command line says it: its arguments named by their flags."""
    owner = getattr(error, "owner", None)
    if owner and owner.get("following"):
        return locked_line(owner)
    return error.worded(flag_of)


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder == os.sep else folder + os.sep)


def followed_by(owner: Mapping[str, Any] | None, roots: Sequence[str]) -> bool:
    """Whether a watching writer (its owner record) follows every one of ``roots`` already."""
    following = (owner or {}).get("following") or []
    return bool(roots) and all(any(_under(r, f) for f in following) for r in roots)


def _who(owner: Mapping[str, Any]) -> str:
    return f"`{escape(owner['command'])}` (pid {owner['pid']})"


def nothing_to_do_line(owner: Mapping[str, Any], roots: Sequence[str]) -> str:
    """``finder index ROOT`` while a watch that follows ROOT holds the library."""
    return (
        f"nothing to do: {', '.join(map(escape, roots))} is followed by {_who(owner)}, which "
        "takes its changes in as they come"
    )


def serve_locked_line(owner: Mapping[str, Any]) -> str:
    """``finder serve --watch`` while another watch holds the library."""
    return (
        f"{_who(owner)} follows {', '.join(map(escape, owner.get('following') or []))} and is "
        "the one writer of this library: `finder serve` (without --watch) shows the page "
        "beside it, new photos included"
    )


def locked_line(owner: Mapping[str, Any], roots: Sequence[str] = ()) -> str:
    """Another process watches the library, its one writer: who, and how to add ``roots``
    (the folders a command was asked to index, not followed yet) to what it follows; without
    ``roots``: to stop it first."""
    following = list(owner.get("following") or [])
    head = (
        f"{_who(owner)} follows {', '.join(map(escape, following))} and is the one writer of "
        "this library"
    )
    new = [r for r in roots if not any(_under(r, f) for f in following)]
    if not new:
        return f"{head}; stop it (Ctrl-C) first, then try again"
    shown = " ".join(map(escape, new))
    if (owner.get("argv") or [])[1:2] == ["serve"]:
        how = (
            f"stop it (Ctrl-C), run `finder index {shown}`, and start `finder serve --watch` "
            "again: it follows every folder indexed"
        )
    else:
        every = " ".join(map(escape, following + new))
        how = f"stop it (Ctrl-C) and run `finder index --watch {every}`"
    return f"{head}; to add {shown}, {how}"


def backbone_rows(specs: Iterable[Any], default: str) -> list[dict[str, Any]]:
    """The registry as ``backbones --json`` prints it (descriptions naming flags)."""
    return [
        {
            "name": s.name,
            "dim": s.dim,
            "input_size": list(s.input_size) if s.input_size else None,
            "gflops": s.gflops,
            "default": s.name == default,
            "description": s.description
            if isinstance(s.description, str)
            else worded(s.description, flag_of),
        }
        for s in specs
    ]


def backbone_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line a backbone: name, dimension, cost relative to the default, description."""
    base = next((r["gflops"] for r in rows if r["default"]), None) or 1.0
    out = []
    for r in rows:
        cost = f"{r['gflops'] / base:.2f}x" if r["gflops"] else "?"
        out.append(
            f"{r['name']:<18} {str(r['dim'] or '-'):>5}-d  cost {cost:>6}  {r['description']}"
        )
    return out


def file_size(n: int) -> str:
    """A byte count for a person: ``812 B``, ``14.2 KB``, ``3.1 MB``, ``1.2 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def dupe_lines(groups: Sequence[Any]) -> list[bytes]:
    """``finder dupes``: each group (identical files, or near-duplicates with their lowest
    similarity), the file to keep first and marked, then a total of what could go."""
    if not groups:
        return [b"no duplicates found"]
    out: list[bytes] = []
    spare_files = spare_bytes = 0
    for g in groups:
        head = "identical" if g.kind == "identical" else f"near-duplicates ({g.similarity:.2f})"
        out.append(f"{head}, {len(g.files)} files:".encode())
        for k, f in enumerate(g.files):
            size = f"{f.width}x{f.height}" if f.width else "?"
            mark = "keep" if k == 0 else "    "
            out.append(
                f"  {mark}  {size:>11}  {file_size(f.bytes):>9}  ".encode() + path_bytes(f.path)
            )
        spare_files += len(g.files) - 1
        spare_bytes += sum(f.bytes for f in g.files[1:])
        out.append(b"")
    out.append(
        f"{_plural(len(groups), 'group')}: {_plural(spare_files, 'file')} could go "
        f"({file_size(spare_bytes)}); nothing was deleted".encode()
    )
    return out


def when(seconds: float) -> str:
    """A moment as a person reads it, in local time: ``2024-06-01 14:05``."""
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def forgotten_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A forgotten class as ``classes --forgotten --json`` prints it."""
    return {
        "name": record["name"],
        "examples": record["n_pos"],
        "negatives": record["n_neg"],
        "forgotten_at": record["forgotten_at"],
        "kept_until": record["kept_until"],
    }


def forgotten_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    if not records:
        return ["no forgotten classes (a forgotten class is kept 30 days)"]
    return [
        f"{escape(r['name'])}\t{r['n_pos']} examples\t{r['n_neg']} counter-examples\t"
        f"forgotten {when(r['forgotten_at'])}, kept until {when(r['kept_until'])}"
        for r in records
    ]


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 example``, ``2 examples``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def import_lines(result: Any) -> tuple[list[str], list[bytes]]:
    """An imported class (``finder.carry.ClassImport``) as (stdout lines, stderr lines): what
    was learned, then how its marks were found and which were not."""
    name = escape(result.name)
    if result.record is None:
        return [], [f"finder: {name!r} not imported: {result.reason}".encode()]
    r = result.record
    out = [
        f"imported {name!r}: {counted(r['n_pos'], 'example')} and "
        f"{counted(r['n_neg'], 'counter-example')} (cut-off {r['threshold']:.2f})"
    ]
    how = [
        (result.by_path, "found at its path", "found at their paths"),
        (result.by_fingerprint, "found by its content elsewhere", "found by content elsewhere"),
        (
            result.by_vector,
            "not indexed here, kept by its vector",
            "not indexed here, kept by their vectors",
        ),
        (
            result.embedded,
            "not indexed here, embedded from its file",
            "not indexed here, embedded from their files",
        ),
    ]
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in how if n]
    err = [f"finder: {name!r}: {', '.join(parts)}".encode()] if parts else []
    if result.missing:
        err.append(f"finder: {name!r}: {len(result.missing)} not found in this library:".encode())
        err.extend(b"  " + path_bytes(p) for p in result.missing)
    return out, err
