"""Reading a machine's console, on every backend, and echoing it to the terminal (every console's
new lines, or one console as it comes, for a person who types on it).

Every backend writes a machine's console to `<output>/<machine>/console.log` (the contract of
`herd_machine_start`), appending at each boot; the driver notes the file's size before each boot,
so that the console "since the machine started" is the file from there. A backend that declares
the `console` capability answers `herd_machine_console` too, and the driver asks it while the
machine runs (see `RunMachine.console_text` in herd.run.fleet).

A machine that fails to boot says why with the end of its console: `text_tail`, `log_tail` and
`machine_error` make that part of an error message, the same on every backend.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from herd.errors import MachineError

ECHO_INTERVAL = 0.2  # seconds between two looks at the consoles while they are echoed
FOLLOW_INTERVAL = 0.05  # the same for the console a person types on (`ConsoleFollower`)
TAIL_LINES = 25  # lines of a console an error message ends with
TAIL_BYTES = 16384  # how much of the end of a console log is read for them


def size_of(path: Path) -> int:
    """The size of the console log at `path` (0 before the first boot wrote it)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_since(path: Path, offset: int) -> str:
    """The console log at `path` from byte `offset` on, as text ("" when there is none)."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(offset)
            data = log_file.read()
    except FileNotFoundError:
        return ""
    return data.decode(errors="replace")


def text_tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of console output, indented, for an error message (carriage returns
    dropped: a serial console ends its lines with CR LF)."""
    last = text.replace("\r", "").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in last) or "    (no console output)"


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """`text_tail` of the console log at `path`, read from its last `TAIL_BYTES` bytes."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(max(log_file.seek(0, os.SEEK_END) - TAIL_BYTES, 0))
            data = log_file.read()
    except FileNotFoundError:
        data = b""
    return text_tail(data.decode(errors="replace"), lines)


def machine_error(machine: str, what: str, log: Path) -> MachineError:
    """The error for machine `machine` that `what` ("did not boot within 60 s"), ending with the
    end of its console log `log`."""
    return MachineError(f"machine {machine} {what}; the end of its console ({log}):\n{log_tail(log)}")


class ConsoleEcho:
    """A thread that prints each machine's new console lines to the terminal while it is on
    (`serial_stdout_on()`), as the NixOS test driver prints its machines' serial output."""

    def __init__(
        self,
        names: Sequence[str],
        read: Callable[[str], str],
        show: Callable[[str, str], None],
    ) -> None:
        self._names = list(names)
        self._read = read
        self._show = show
        self._shown = dict.fromkeys(self._names, 0)  # characters of each console already shown
        self._on = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def switch(self, on: bool) -> None:
        """Start or stop echoing. What a console printed while the echo was off is not shown."""
        if on and not self._on.is_set():
            for name in self._names:
                self._shown[name] = len(self._read(name))
        if on:
            self._on.set()
        else:
            self._on.clear()
        if on and self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="herd-console-echo", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        while not self._stopped.wait(ECHO_INTERVAL):
            if self._on.is_set():
                self.show_new_lines()

    def show_new_lines(self) -> None:
        """Show the lines each console completed since the last look."""
        for name in self._names:
            text = self._read(name)
            if len(text) < self._shown[name]:  # the machine booted again: its console starts anew
                self._shown[name] = 0
            end = text.rfind("\n") + 1
            for line in text[self._shown[name] : end].splitlines():
                self._show(name, line)
            self._shown[name] = max(self._shown[name], end)

    def stop(self) -> None:
        """Stop echoing, once the lines completed since the last look are shown (if it is on)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        if self._on.is_set():
            self.show_new_lines()


class ConsoleFollower:
    """A thread that writes what one console prints from now on to `out` as it comes, partial lines
    (a prompt) too: the output side of `console_interact()`."""

    def __init__(self, read: Callable[[], str], out: TextIO) -> None:
        self._read = read
        self._out = out
        self._shown = len(read())
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="herd-console-follow", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stopped.wait(FOLLOW_INTERVAL):
            self.show_new_text()

    def show_new_text(self) -> None:
        text = self._read()
        if len(text) < self._shown:  # the machine booted again: its console starts anew
            self._shown = 0
        if len(text) > self._shown:
            self._out.write(text[self._shown :])
            self._out.flush()
            self._shown = len(text)

    def stop(self) -> None:
        """Show what came last, and stop."""
        self._stopped.set()
        self._thread.join()
        self.show_new_text()
