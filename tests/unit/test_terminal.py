"""The terminal's view of a run: machines' lines under their names in their colours, plain lines where
the output is not a terminal, a status line redrawn in place where it is, NO_COLOR and FORCE_COLOR."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.errors import WaitTimeout
from herd.report.journalfollow import entry_line
from herd.report.log import RunLog
from herd.report.terminal import ERASE, MACHINE_COLORS, MachinePrefixes, Progress, Terminal
from herd.run.waiting import poll

SGR = re.compile(r"\x1b\[[0-9;]*m")


class Stream(io.StringIO):
    """A stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture(autouse=True)
def _no_colour_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def test_each_machine_gets_a_colour_of_its_own_in_declaration_order() -> None:
    names = [f"m{i}" for i in range(len(MACHINE_COLORS) + 1)]
    prefixes = MachinePrefixes(names, color=True)
    starts = [prefixes.line(name, "console", "hello").split("m", 2)[0] for name in names]
    codes = [re.search(r"\x1b\[(\d+)m", prefixes.line(name, "console", "x")) for name in names]
    assert [c.group(1) for c in codes if c] == [*MACHINE_COLORS, MACHINE_COLORS[0]]  # then round again
    assert all(start.startswith("  \x1b[") for start in starts)
    assert "31" not in MACHINE_COLORS  # red is for failures


def test_a_machine_line_without_colour_is_its_padded_name_its_source_and_the_text() -> None:
    prefixes = MachinePrefixes(["server"], color=False)
    assert prefixes.line("server", "journal", "Started nginx.") == "  server       journal Started nginx."


def test_not_a_terminal_plain_lines_and_no_status() -> None:
    stream = Stream(tty=False)
    terminal = Terminal(stream)
    terminal.status("wait", lambda: "waiting for it · 3 s")
    terminal.line("PASS", "green")
    terminal.close()
    assert stream.getvalue() == "PASS\n"


def test_a_terminal_keeps_the_status_on_its_last_line_and_writes_lines_above_it() -> None:
    stream = Stream(tty=True)
    terminal = Terminal(stream)
    terminal.status("boots", lambda: "booted 3/100")
    terminal.line("a line")
    terminal.status("boots", None)
    terminal.close()
    written = SGR.sub("", stream.getvalue())
    # drawn; erased for the line, which goes above it; drawn again; erased when it ends
    assert written == f"{ERASE}booted 3/100{ERASE}a line\n{ERASE}booted 3/100{ERASE}"


def test_closing_a_terminal_takes_its_status_away() -> None:
    stream = Stream(tty=True)
    terminal = Terminal(stream)
    terminal.status("wait", lambda: "waiting")
    terminal.close()
    assert stream.getvalue().endswith(ERASE)
    terminal.status("wait", lambda: "waiting again")  # after close: drawn, never redrawn by a ticker
    assert terminal._ticker is not None and not terminal._ticker.is_alive()


@pytest.mark.parametrize(
    ("environment", "tty", "colour", "in_place"),
    [
        ({}, True, True, True),
        ({}, False, False, False),
        ({"NO_COLOR": "1"}, True, False, True),  # no colour, but still a status line
        ({"FORCE_COLOR": "1"}, False, True, False),  # colour, but plain lines in a pipe
        ({"FORCE_COLOR": ""}, False, False, False),
    ],
)
def test_colour_and_in_place_updates_follow_the_terminal_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], tty: bool, colour: bool, in_place: bool
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    stream = Stream(tty)
    log = RunLog(None, stream, machines=["server"])
    log.machine_line("server", "console", "Reached target")
    log.status("progress", Progress("booted", 2).render)
    log.close()
    assert ("\x1b[" in SGR.sub("", stream.getvalue()).replace(ERASE, "")) is False
    assert bool(SGR.search(stream.getvalue())) is colour
    assert (ERASE in stream.getvalue()) is in_place
    assert "server" in stream.getvalue() and "Reached target" in stream.getvalue()


def test_a_machine_line_is_shown_never_obeyed() -> None:
    stream = Stream(tty=False)
    log = RunLog(None, stream, machines=["server"])
    log.machine_line("server", "console", "\x1b]0;title\x07\x1b[2J")
    log.close()
    assert stream.getvalue() == "  server       console \\x1b]0;title\\x07\\x1b[2J\n"


def test_progress_counts_what_is_through() -> None:
    progress = Progress("booted", 100)
    for _ in range(37):
        progress.one_done()
    assert progress.render() == "booted 37/100"


def _probe(log: RunLog, succeed_at: int | None, cut_off_last: bool = False) -> Callable[[bool], bool]:
    """A wait's condition that runs a command `probe` (logged) and holds at its try `succeed_at`;
    its last try is killed at the deadline when `cut_off_last`."""
    tries = iter(range(1000))

    def condition(last_try: bool) -> bool:
        n = next(tries)
        cut_off = cut_off_last and last_try
        log.command(
            "server",
            "probe",
            status=137 if cut_off else 0 if n == succeed_at else 1,
            seconds=0.0,
            stdout=b"" if cut_off else f"try {n}".encode(),
            stderr=b"",
            timed_out=cut_off,
        )
        return n == succeed_at

    return condition


def test_a_wait_logs_its_start_and_its_end_not_each_poll(tmp_path: Path) -> None:
    stream = Stream(tty=False)
    log = RunLog(tmp_path / "log.txt", stream, verbose=True, machines=["server"])
    poll(_probe(log, succeed_at=5), 10, "the probe", "server", log=log)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert "$ probe" not in text and "try " not in text
    assert text.count("server: waiting for the probe") == 1
    assert re.search(r"server: waited \d+\.\d\d s for the probe \(6 tries\)", text)
    assert len(stream.getvalue().splitlines()) == 1  # one terminal line, even when verbose
    assert "waited" in stream.getvalue()
    [wait] = log.record.root.entries
    assert wait.title == "server: waiting for the probe" and not wait.failed  # type: ignore[union-attr]


def test_a_failed_wait_logs_its_last_poll_and_its_outcome(tmp_path: Path) -> None:
    stream = Stream(tty=False)
    log = RunLog(tmp_path / "log.txt", stream, machines=["server"])
    with pytest.raises(WaitTimeout):
        poll(_probe(log, succeed_at=None), 0.2, "the probe", "server", log=log)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert text.count("$ probe") == 1  # the last try, with its output
    [last] = re.findall(r"try (\d+)", text)
    ended = re.search(r"server: gave up waiting for the probe after \d+\.\d\d s \((\d+) tries\)", text)
    assert ended is not None and int(ended.group(1)) == int(last) + 1 > 1  # the output of its last try
    assert "gave up" in stream.getvalue() and len(stream.getvalue().splitlines()) == 1
    [wait] = log.record.root.entries
    assert wait.failed  # type: ignore[union-attr]


def test_a_failed_wait_whose_last_try_was_cut_off_logs_the_last_that_finished(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "log.txt", None)
    with pytest.raises(WaitTimeout):
        poll(_probe(log, succeed_at=None, cut_off_last=True), 0.2, "the probe", "server", log=log)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert text.count("$ probe") == 1 and "exit 1 " in text and "exit 137" not in text
    assert "(its last try was cut off at the wait's deadline)" in text


def test_a_wait_on_a_terminal_shows_its_elapsed_time_in_place(tmp_path: Path) -> None:
    stream = Stream(tty=True)
    log = RunLog(None, stream, machines=["server"])
    poll(_probe(log, succeed_at=2), 10, "the probe", "server", log=log)
    log.close()
    shown = SGR.sub("", stream.getvalue())
    assert f"{ERASE}  server       waiting for the probe · 0 s" in shown
    # then the status goes, and the wait's one line takes its place
    assert re.fullmatch(
        rf".*{re.escape(ERASE)}  server       waited [0-9.]+ s for the probe \(3 tries\)\n", shown
    )


def test_a_wait_within_a_wait_is_part_of_the_outer_one(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "log.txt", None)
    poll(lambda _: poll(_probe(log, succeed_at=1), 10, "inner", "server", log=log), 10, "outer", log=log)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert "waiting for outer" in text and "inner" not in text


def test_a_journal_entry_as_a_line() -> None:
    entry = {"SYSLOG_IDENTIFIER": "systemd", "_PID": "1", "MESSAGE": "Started nginx.service."}
    assert entry_line(entry) == "systemd[1]: Started nginx.service."
    assert entry_line({"_COMM": "kernel", "MESSAGE": list(b"bytes \xff")}) == "kernel: bytes \ufffd"
