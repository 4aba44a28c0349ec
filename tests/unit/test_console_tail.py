"""The end of a machine's console in error messages (herd.linux.console's tails), the same on every
backend."""

from __future__ import annotations

from pathlib import Path

from herd.errors import MachineError
from herd.linux.console import TAIL_BYTES, TAIL_LINES, log_tail, machine_error, text_tail


def test_the_last_lines_indented_and_without_carriage_returns() -> None:
    text = "".join(f"line {n}\r\r\n" for n in range(40)) + "last, unfinished"
    lines = text_tail(text).split("\n")
    assert len(lines) == TAIL_LINES
    assert lines[0] == "    line 16"
    assert lines[-2:] == ["    line 39", "    last, unfinished"]
    assert text_tail(text, lines=2) == "    line 39\n    last, unfinished"


def test_a_console_with_nothing_says_so() -> None:
    assert text_tail("") == "    (no console output)"


def test_a_log_is_read_from_its_end_only(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    end = b"\nbooting\n\xff failed\n"
    log.write_bytes(b"x" * (2 * TAIL_BYTES) + end)
    kept = "x" * (TAIL_BYTES - len(end))  # of the long first line, what the last TAIL_BYTES hold
    assert log_tail(log) == f"    {kept}\n    booting\n    \ufffd failed"


def test_a_missing_or_empty_log_says_so(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    assert log_tail(log) == "    (no console output)"
    log.touch()
    assert log_tail(log) == "    (no console output)"


def test_a_machine_error_ends_with_the_console(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("Welcome\nherd.target reached? no\n")
    error = machine_error("web", "did not boot within 5 s", log)
    assert isinstance(error, MachineError)
    assert str(error) == (
        f"machine web did not boot within 5 s; the end of its console ({log}):\n"
        "    Welcome\n    herd.target reached? no"
    )
