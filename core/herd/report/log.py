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
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from herd.report.runrecord import OUTPUT_KEPT, Command, Line, RunRecord, Section
from herd.report.terminal import MachinePrefixes, Terminal

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


class Wait:
    """A wait under way (`RunLog.waiting`): how often it looked, the last command it ran that
    finished, and whether one after it was cut off by the wait's deadline."""

    def __init__(self) -> None:
        self.tries = 0
        self.last: Command | None = None
        self.cut_off = False


class RunLog:
    """The log of one run. Thread-safe: machines boot and commands run from several threads.
    `machines` are the run's machine names, in declaration order: each gets its colour on the
    terminal (`machine_line`)."""

    def __init__(
        self,
        path: Path | None,
        terminal: TextIO | None = sys.stderr,
        verbose: bool = False,
        name: str = "run",
        machines: Sequence[str] = (),
    ) -> None:
        self.start = time.monotonic()
        self.path = path
        self.file = open(path, "w", buffering=1) if path is not None else None  # noqa: SIM115
        self.record = RunRecord(name)
        self._sections = [self.record.root]  # the open ones, innermost last
        self.terminal = Terminal(terminal)
        self.prefixes = MachinePrefixes(machines, self.terminal.color)
        self.verbose = verbose
        self.depth = 0
        self.lock = threading.Lock()
        self._muted: set[tuple[str, str]] = set()  # (machine, source) shown raw elsewhere for now
        self._waits = threading.local()  # the wait under way in each thread, if any
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
        self.terminal.line(printable(text), color)

    def machine_line(self, machine: str, source: str, text: str) -> None:
        """A line of `machine`'s `source` ("console", "journal") for the terminal only: the file
        that `source` is in the output directory has it already."""
        if (machine, source) not in self._muted:
            self.terminal.line(self.prefixes.line(machine, source, printable(text)))

    @contextmanager
    def muted(self, machine: str, source: str) -> Iterator[None]:
        """Leave `machine`'s `source` lines off the terminal for a while: `console_interact()`
        shows that console as it is, and the prefixed copy would print every line twice."""
        self._muted.add((machine, source))
        try:
            yield
        finally:
            self._muted.discard((machine, source))

    def status(self, key: object, render: Callable[[], str] | None) -> None:
        """A status kept current on the terminal's last line (`Terminal.status`); None ends it."""
        self.terminal.status(key, render)

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
        self,
        machine: str,
        command: str,
        *,
        status: int,
        seconds: float,
        stdout: bytes,
        stderr: bytes,
        timed_out: bool = False,
    ) -> None:
        """A command the script ran: always in the file with its output, on the terminal when
        verbose; within a wait, only kept as the wait's last (`waiting`). `timed_out`: it was
        killed at its timeout."""
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
        wait: Wait | None = getattr(self._waits, "wait", None)
        if wait is not None:
            wait.cut_off = timed_out
            if not timed_out:
                wait.last = entry
            return
        self._write_command(entry, stdout, stderr)
        with self.lock:
            self._sections[-1].entries.append(entry)
        if self.verbose:
            self.terminal_line(f"  {machine:<12} $ {command}  ({status}, {seconds:.2f} s)", "dim")

    def _write_command(self, entry: Command, stdout: bytes, stderr: bytes) -> None:
        machine, status, seconds = entry.machine, entry.status, entry.seconds
        self.write_file(f"{machine}: $ {entry.command}  -> exit {status} in {seconds:.3f} s")
        EVENTS.info("%s: $ %s  -> exit %d in %.3f s", machine, printable(entry.command), status, seconds)
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            if data:
                self.write_file(f"{machine}: {name}:\n{_excerpt(data)}")

    @contextmanager
    def waiting(self, what: str, machine: str | None = None) -> Iterator[Wait]:
        """A wait for `what`: its start and its end in the file, one line on the terminal (kept
        current while it waits, where the terminal allows). The commands it polls with are not
        logged one by one: the wait keeps the last, written out when the wait fails. A wait
        within a wait of the same thread is part of the outer one's polling."""
        outer: Wait | None = getattr(self._waits, "wait", None)
        wait = Wait()
        if outer is not None:
            yield wait
            return
        title = f"{machine}: waiting for {what}" if machine else f"waiting for {what}"
        self.write_file(title)
        EVENTS.info("%s", printable(title))
        started = time.monotonic()
        section = Section(self.elapsed(), printable(title))
        shown = f"  {machine:<12} " if machine else ""
        key = object()
        self.status(key, lambda: f"{shown}waiting for {what} · {time.monotonic() - started:.0f} s")
        self._waits.wait = wait
        failure: BaseException | None = None
        try:
            yield wait
        except BaseException as error:
            failure = error
            raise
        finally:
            self._waits.wait = None
            self.status(key, None)
            section.seconds = seconds = time.monotonic() - started
            section.failed = failure is not None
            tries = f"{wait.tries} {'try' if wait.tries == 1 else 'tries'}"
            if wait.last is not None:
                section.entries.append(wait.last)
            if failure is None:
                ended = f"waited {seconds:.2f} s for {what} ({tries})"
            else:
                if wait.last is not None:
                    self.write_file("the last try that finished:")
                    self._write_command(wait.last, wait.last.stdout, wait.last.stderr)
                if wait.cut_off:
                    self.write_file("(its last try was cut off at the wait's deadline)")
                ended = f"gave up waiting for {what} after {seconds:.2f} s ({tries})"
            logged = f"{machine}: {ended}" if machine else ended
            self.write_file(logged)
            EVENTS.info("%s", printable(logged))
            with self.lock:
                self._sections[-1].entries.append(section)
            self.terminal_line(f"{shown}{ended}", None if failure is None else "red")

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
        self.terminal.close()
        if self.file is not None:
            self.file.close()
            self.file = None
            if self.path is not None:
                from herd.report import htmlreport

                htmlreport.write(self.record, self.path.parent, self.path.with_name("log.html"))
