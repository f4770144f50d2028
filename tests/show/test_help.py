"""Every command and every option explains itself, in words a person writes (sqlite-utils does
the same check): no option without help, no Python types in the usage lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from finder.show.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> dict:
    return dict(typer.main.get_command(app).commands)  # typer vendors its own click


COMMANDS = sorted(_commands())


def test_there_are_commands() -> None:
    assert {"index", "learn", "find", "similar", "status", "classes", "forget"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_and_option_has_help(name: str) -> None:
    cmd = _commands()[name]
    assert (cmd.help or "").strip(), f"`finder {name}` has no help text"
    for param in cmd.params:
        label = "/".join(getattr(param, "opts", [])) or param.name
        assert (getattr(param, "help", None) or "").strip(), f"finder {name} {label}: no help"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_reads_as_a_person_writes_it(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert not re.search(r"<(list\[|int|str|float|path|bool)", out), out
    assert "{" not in out.splitlines()[0], out.splitlines()[0]


def test_index_help_names_root_and_path() -> None:
    out = CliRunner().invoke(app, ["index", "--help"]).output
    # ROOT is optional only for `finder index --forget-root ROOT`
    assert out.splitlines()[0].endswith("[ROOT...]"), out.splitlines()[0]
    assert "--library PATH" in out and "--weights FILE" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"finder {name}" in README.read_text(encoding="utf-8"), f"README lacks `finder {name}`"


# what only an index run does: walking, decoding, the search index, the page's thumbnails
INDEX_ONLY = {
    "roots",
    "hidden",
    "exclude",
    "batch_size",
    "workers",
    "memory_budget",
    "thumbnails",
    "ray",
    "no_videos",
    "watch",
    "poll",
    "forget_root",
}


def test_eval_accepts_every_backbone_option_of_index() -> None:
    from finder.show.app import BACKBONE_OPTIONS

    commands = _commands()
    index = {p.name for p in commands["index"].params}
    evaluate = {p.name: p for p in commands["eval"].params}
    assert set(BACKBONE_OPTIONS) <= index
    # an option of index that chooses the backbone (anything not index-only) is eval's too
    for name in sorted(index - INDEX_ONLY):
        assert name in evaluate, f"finder eval lacks --{name.replace('_', '-')}"
    for name in BACKBONE_OPTIONS:
        flags = [p.opts for p in commands["index"].params if p.name == name][0]
        assert evaluate[name].opts == flags  # spelled the same
