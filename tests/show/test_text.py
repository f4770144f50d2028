"""finder.show.text: what a person reads; control characters in names never forge output."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from finder.show import text
from tests.conftest import make_photo


@dataclass
class _M:
    path: str
    score: float


def test_escape_is_ls_style_and_leaves_printable_text_alone() -> None:
    assert text.escape("plain ünïcode 日本.jpg") == "plain ünïcode 日本.jpg"
    assert text.escape("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert text.escape("\x1b[31mred") == "\\033[31mred"
    assert text.escape("back\\slash") == "back\\\\slash"
    assert text.escape("\x7f\x85") == "\\177\\205"


def test_a_forged_name_stays_one_line() -> None:
    forged = "/p/x\n0.999  /etc/passwd.jpg"
    lines = text.match_lines([_M(forged, 0.5), _M("/p/ok.jpg", 0.25)])
    assert len(lines) == 2 and all(b"\n" not in line for line in lines)
    assert lines[0] == b"0.500  /p/x\\n0.999  /etc/passwd.jpg"


def test_undecodable_bytes_stay_raw() -> None:
    path = os.fsdecode(b"/p/caf\xe9.jpg")
    assert text.path_bytes(path) == b"/p/caf\xe9.jpg"


def test_cli_escapes_text_and_keeps_json_exact(cli, tmp_path: Path, model_args) -> None:
    root = tmp_path / "photos"
    for i in range(3):
        make_photo(root / f"{i}.jpg", "red", seed=i)
    forged = root / "x\n0.999  etc-passwd.jpg"
    make_photo(forged, "red", seed=7)
    cli("index", str(root), *model_args, "-q")
    out = cli("similar", str(root / "0.jpg"), "--top", "10").stdout_bytes
    lines = out.splitlines()
    assert len(lines) == 3, out  # three other photos, one line each
    assert any(line.endswith(b"x\\n0.999  etc-passwd.jpg") for line in lines), out
    rows = json.loads(cli("similar", str(root / "0.jpg"), "--top", "10", "--json").stdout)
    assert str(forged) in {r["path"] for r in rows}


def test_dupe_lines_mark_the_keeper_and_count_what_could_go() -> None:
    from finder.act.dupes import DupeFile, DupeGroup

    keep = DupeFile("/p/a.jpg", 1, 2_000_000, 1, 4000, 3000)
    forged = DupeFile("/p/x\n0.999  /etc/passwd.jpg", 2, 500_000, 2, 2000, 1500)
    unknown = DupeFile("/p/c.jpg", 3, 812, 3)
    groups = [DupeGroup("identical", (keep, unknown), 1.0), DupeGroup("near", (keep, forged), 0.91)]
    lines = text.dupe_lines(groups)
    assert lines[0] == b"identical, 2 files:"
    assert lines[1].startswith(b"  keep    4000x3000     2.0 MB  /p/a.jpg")
    assert lines[2].split() == [b"?", b"812", b"B", b"/p/c.jpg"]
    assert lines[4] == b"near-duplicates (0.91), 2 files:"
    assert b"/p/x\\n0.999  /etc/passwd.jpg" in lines[6] and len(lines) == 9
    assert lines[-1] == b"2 groups: 2 files could go (500.8 KB); nothing was deleted"
    assert text.dupe_lines([]) == [b"no duplicates found"]
    assert text.file_size(1_500_000_000) == "1.5 GB"
