"""The README and the programs' --help must agree."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

import pacslistener.main
import pacsquery.main
import pacsretrieve.main

README = (Path(__file__).parent.parent / "README.md").read_text()
PARSERS = {
    "pacsquery": pacsquery.main.parser,
    "pacsretrieve": pacsretrieve.main.parser,
    "pacslistener": pacslistener.main.build_parser(),
}
HIDDEN = {"--help", "--version", "--saveinputmeta", "--saveoutputmeta"}


def section(name: str) -> str:
    """Return the README's section about one program."""
    match = re.search(rf"^## {name}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section '## {name}'"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_is_documented(name: str) -> None:
    text = section(name)
    parser: argparse.ArgumentParser = PARSERS[name]
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in HIDDEN:
                assert f"`{flag}`" in text, f"{name}: README lacks {flag}"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_documented_options_exist(name: str) -> None:
    flags = {f for a in PARSERS[name]._actions for f in a.option_strings}
    for flag in re.findall(r"`(--[a-z][a-zA-Z-]*)`", section(name)):
        assert flag in flags, f"{name}: README names {flag}, which does not exist"


def test_readme_starts_with_the_two_commands() -> None:
    head = README[: README.index("## ")]
    assert "scripts/demo" in head and "scripts/test" in head
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "scripts/test" in ci
