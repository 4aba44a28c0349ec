"""Which REPL `herd run --interactive` opens ($HERD_REPL, ptpython's presence, the terminal)."""

from __future__ import annotations

import io
import sys

import pytest

from herd.errors import ArgumentError
from herd.run import interactive


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("wanted", "terminal", "repl"),
    [
        ("ptpython", True, interactive.ptpython_repl),
        ("ptpython", False, interactive.stdlib_repl),  # prompt_toolkit needs a terminal
        ("stdlib", True, interactive.stdlib_repl),
    ],
)
def test_the_repl_is_ptpythons_on_a_terminal_unless_the_standard_librarys_is_asked_for(
    wanted: str, terminal: bool, repl: interactive.Repl, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ptpython")  # the interactive extra
    monkeypatch.setenv("HERD_REPL", wanted)
    monkeypatch.setattr(sys, "stdin", Terminal() if terminal else io.StringIO())
    assert interactive.chosen_repl() is repl


def test_an_unknown_repl_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_REPL", "bpython")
    with pytest.raises(ArgumentError, match=r"\$HERD_REPL: expected one of ptpython, stdlib, got 'bpython'"):
        interactive.chosen_repl()
