"""The run's log: what a machine prints is shown, never obeyed, on the terminal and in log.txt."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from herd.report.log import RunLog, printable
from herd.report.terminal import colors_wanted


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[32mPASS", "\\x1b[32mPASS"),  # ESC: colours, cursor moves
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC: the window's title; BEL
        ("FAIL\rPASS", "FAIL\\x0dPASS"),  # a lone carriage return would overwrite the line
        ("abc\x08\x08\x08", "abc\\x08\\x08\\x08"),  # backspaces
        ("\x9b31m", "\\x9b31m"),  # C1: CSI in one character
        ("\x85\x9f\x80", "\\x85\\x9f\\x80"),
        ("\x00\x01\x0b\x0c\x1f\x7f", "\\x00\\x01\\x0b\\x0c\\x1f\\x7f"),
    ],
)
def test_control_characters_are_written_as_their_code(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_newlines_tabs_and_text_stay_as_they_are() -> None:
    text = "line 1\n\tindented · ünïcode → ok \\x1b stays text\n"
    assert printable(text) == text


def test_a_carriage_return_ending_a_line_is_dropped() -> None:
    assert printable("console line\r\nnext\r\n") == "console line\nnext\n"


def test_the_log_file_and_the_terminal_get_machine_output_neutralised(tmp_path: Path) -> None:
    terminal = io.StringIO()
    log = RunLog(tmp_path / "log.txt", terminal, verbose=True)
    output = b"\x1b[32mPASS\x1b]0;title\x07\r\n"
    csi = "\x9b2J".encode()  # C1's CSI, as UTF-8
    log.command("m", "printf ...", status=0, seconds=0.01, stdout=output, stderr=csi)
    log.info("\x1b[2Jcleared?", machine="m")
    log.close()
    written = (tmp_path / "log.txt").read_text() + terminal.getvalue()
    assert not any(character in written for character in "\x1b\x07\r\x9b")
    assert "\\x1b[32mPASS\\x1b]0;title\\x07" in written and "\\x9b2J" in written
    assert "m            \\x1b[2Jcleared?" in terminal.getvalue()


@pytest.mark.parametrize(
    ("environment", "tty", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # set but empty: as if unset
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "0"}, False, False),
        ({"FORCE_COLOR": ""}, False, False),  # set but empty: as if unset
        ({"FORCE_COLOR": "0"}, True, True),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
    ],
)
def test_colours_follow_no_color_force_color_and_the_terminal(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], tty: bool, expected: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    stream = Stream()
    assert colors_wanted(stream) is expected
    log = RunLog(None, stream)
    log.info("PASS", color="green")
    assert ("\x1b[" in stream.getvalue()) is expected


def test_run_events_reach_the_standard_logging_module_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="herd")
    log = RunLog(tmp_path / "log.txt", terminal=None)
    with log.section("subtest: one"):
        log.info("booted in 0.3 s", machine="m")
        log.command("m", "echo \x1b[2J", status=0, seconds=0.01, stdout=b"secret output", stderr=b"")
    log.failure("m: it broke", "Traceback …")
    log.close()
    events = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert events == [
        ("herd.run", "INFO", "subtest: one"),
        ("herd.run", "INFO", "m: booted in 0.3 s"),
        ("herd.run", "INFO", "m: $ echo \\x1b[2J  -> exit 0 in 0.010 s"),
        ("herd.run", "INFO", "done: subtest: one (0.00 s)"),
        ("herd.run", "ERROR", "m: it broke"),
    ]
    assert (tmp_path / "log.txt").read_text().count("booted in 0.3 s") == 1  # not forwarded back
