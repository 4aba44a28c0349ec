"""A run's log: a nested, timed record in the output directory, and a short view on the terminal.

Every line of `log.txt` starts with the seconds since the run began; sections (a machine's boot, a
subtest) nest and end with their duration. The terminal gets the same events, one short line each.
Plugins log through the standard `logging` module under the `herd` logger: those records land in the
file, and warnings also on the terminal.

Whatever a machine prints can reach both (a command's output, a console's or journal's tail in an
error), so every line written is made `printable` first: a machine cannot move the cursor, colour a
line, set the window's title or ring the bell on the user's terminal, nor hide text in the file.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from herd.report.runrecord import OUTPUT_KEPT, Command, Line, RunRecord, Section

OUTPUT_EXCERPT = 4096  # bytes of a command's output that the log keeps
# The run's events as standard log records too (INFO, without the commands' output), so that
# pytest's caplog, live logging and its JUnit report see them; not forwarded back into the file.
EVENTS = logging.getLogger("herd.run")
# Control characters but newline and tab: C0, DEL and C1 (U+0080-U+009F, which some terminals obey).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` safe to print: each control character but newline and tab is written as the text
    `\\xNN` (ESC as `\\x1b`), so that escape sequences show instead of acting. A carriage return
    right before a newline is dropped: it moves nothing, and consoles end their lines with it."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text.replace("\r\n", "\n"))


def _excerpt(data: bytes) -> str:
    text = data[:OUTPUT_EXCERPT].decode(errors="replace")
    if len(data) > OUTPUT_EXCERPT:
        text += f"\n… ({len(data) - OUTPUT_EXCERPT} more bytes)"
    return text


class _Forward(logging.Handler):
    def __init__(self, run_log: RunLog) -> None:
        super().__init__(logging.DEBUG)
        self.run_log = run_log

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == EVENTS.name:
            return
        message = record.getMessage()
        self.run_log.write_file(f"{record.name}: {message}")
        if record.levelno >= logging.WARNING:
            self.run_log.terminal_line(f"warning: {message}", "yellow")


def colors_wanted(stream: TextIO) -> bool:
    """Whether to colour what goes to `stream`: never with NO_COLOR set, always with FORCE_COLOR
    set (but to 0), else where it is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "0") != "0":
        return True
    return stream.isatty()


class RunLog:
    """The log of one run. Thread-safe: machines boot and commands run from several threads."""

    def __init__(
        self,
        path: Path | None,
        terminal: TextIO | None = sys.stderr,
        verbose: bool = False,
        name: str = "run",
    ) -> None:
        self.start = time.monotonic()
        self.path = path
        self.file = open(path, "w", buffering=1) if path is not None else None  # noqa: SIM115
        self.record = RunRecord(name)
        self._sections = [self.record.root]  # the open ones, innermost last
        self.terminal = terminal
        self.verbose = verbose
        self.color = terminal is not None and colors_wanted(terminal)
        self.depth = 0
        self.lock = threading.Lock()
        self._handler = _Forward(self)
        logger = logging.getLogger("herd")
        logger.addHandler(self._handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def write_file(self, text: str) -> None:
        if self.file is None:
            return
        stamp = f"[{self.elapsed():8.3f}] "
        indent = "  " * self.depth
        with self.lock:
            for line in printable(text).splitlines() or [""]:
                self.file.write(f"{stamp}{indent}{line}\n")

    def terminal_line(self, text: str, color: str | None = None) -> None:
        if self.terminal is None:
            return
        text = printable(text)
        if self.color and color:
            codes = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
            text = f"\x1b[{codes[color]}m{text}\x1b[0m"
        with self.lock:
            try:
                self.terminal.write(text + "\n")
                self.terminal.flush()
            except OSError:  # the terminal went away (a closed pipe): the log file still has it all
                self.terminal = None

    def info(
        self, text: str, machine: str | None = None, show: bool = True, color: str | None = None
    ) -> None:
        """A line for the file and, when `show`, for the terminal."""
        line = f"{machine}: {text}" if machine else text
        self.write_file(line)
        EVENTS.info("%s", printable(line))
        with self.lock:
            self._sections[-1].entries.append(Line(self.elapsed(), printable(text), machine))
        if show:
            self.terminal_line(f"  {machine:<12} {text}" if machine else text, color)

    def command(
        self, machine: str, command: str, *, status: int, seconds: float, stdout: bytes, stderr: bytes
    ) -> None:
        """A command the script ran: always in the file with its output, on the terminal when verbose."""
        self.write_file(f"{machine}: $ {command}  -> exit {status} in {seconds:.3f} s")
        EVENTS.info("%s: $ %s  -> exit %d in %.3f s", machine, printable(command), status, seconds)
        entry = Command(
            self.elapsed() - seconds,
            machine,
            command,
            status,
            seconds,
            stdout[:OUTPUT_KEPT],
            stderr[:OUTPUT_KEPT],
            len(stdout),
            len(stderr),
        )
        with self.lock:
            self._sections[-1].entries.append(entry)
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            if data:
                self.write_file(f"{machine}: {name}:\n{_excerpt(data)}")
        if self.verbose:
            self.terminal_line(f"  {machine:<12} $ {command}  ({status}, {seconds:.2f} s)", "dim")

    @contextmanager
    def section(self, title: str) -> Iterator[None]:
        """A nested, timed part of the run (a subtest)."""
        self.write_file(title)
        EVENTS.info("%s", printable(title))
        self.terminal_line(title, "bold")
        started = time.monotonic()
        section = Section(self.elapsed(), printable(title))
        with self.lock:
            self._sections[-1].entries.append(section)
            self._sections.append(section)
        self.depth += 1
        failed = True
        try:
            yield
            failed = False
        finally:
            self.depth -= 1
            seconds = time.monotonic() - started
            section.seconds, section.failed = seconds, failed
            with self.lock:
                self._sections.remove(section)
            ended = f"{'failed' if failed else 'done'}: {title} ({seconds:.2f} s)"
            self.write_file(ended)
            EVENTS.info("%s", printable(ended))

    def failure(self, message: str, traceback: str) -> None:
        """Why the run failed: `message` on one line, and the traceback (for the file and reports)."""
        self.write_file(traceback)
        EVENTS.error("%s", printable(message))
        self.record.error, self.record.traceback = printable(message), printable(traceback)

    def end(self, result: str, seconds: float) -> None:
        """How the run ended (PASS, FAIL or INTERRUPTED), for the reports."""
        self.record.result, self.record.seconds = result, seconds

    def close(self) -> None:
        """Stop logging; write `log.html` beside `log.txt` (see `herd.report.htmlreport`)."""
        logging.getLogger("herd").removeHandler(self._handler)
        if self.file is not None:
            self.file.close()
            self.file = None
            if self.path is not None:
                from herd.report import htmlreport

                htmlreport.write(self.record, self.path.parent, self.path.with_name("log.html"))
