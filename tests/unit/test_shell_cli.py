"""`herd shell`'s words: RUN, MACHINE and the command after `--`."""

from __future__ import annotations

import pytest

from herd.cli.shell import parse_target
from herd.errors import ArgumentError


@pytest.mark.parametrize(
    ("words", "target"),
    [
        (["server"], (None, "server", None)),
        (["ab12c", "server"], ("ab12c", "server", None)),
        (["server", "--", "ls", "-l"], (None, "server", "ls -l")),
        (["ab12c", "server", "--", "echo", "--", "$HOME"], ("ab12c", "server", "echo -- $HOME")),
    ],
)
def test_run_machine_and_command(words: list[str], target: tuple[str | None, str, str | None]) -> None:
    assert parse_target(words) == target


@pytest.mark.parametrize("words", [[], ["a", "b", "c"], ["server", "--"], ["--", "ls"]])
def test_other_words_are_refused_with_the_usage(words: list[str]) -> None:
    with pytest.raises(ArgumentError):
        parse_target(words)
