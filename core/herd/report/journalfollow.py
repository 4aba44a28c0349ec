"""The machines' journals followed as they are written, for the terminal (`herd run --console`).

Every backend's machine writes its journal to `<output>/<machine>/journal` (herd.report.journal).
The host's `journalctl --follow` reads each one as journald writes it: it knows the journal's file
format, its rotations and the machine-id directory a first boot makes, which a reader of our own
would have to learn. One journalctl per machine, started once the machine's journal holds a file
(its first boot makes it), from the time the run began; one thread reads them all. A journalctl
that ends early (it does at once on a journal whose first file journald is still making) is started
again a look later, from the last entry shown. Each dies
with that thread (`setpriv --pdeathsig`), should herd itself be killed, and `stop` ends them, then
reads each journal once more from the last entry shown, so that the end of a run (its machines'
shutdowns) is shown whole.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

LOOK = 0.2  # seconds between two looks for journal directories not yet followed
STOP_WAIT = 5.0  # seconds a journalctl gets to end once told to
CATCH_UP_TIMEOUT = 10.0  # seconds journalctl gets to read the rest of a journal at the end


def entry_line(entry: Mapping[str, Any]) -> str:
    """One entry of `journalctl --output=json` as a line: `identifier[pid]: message`, as journalctl's
    short format has it without the time and host. A message of bytes journalctl gives as numbers."""
    message = entry.get("MESSAGE")
    if isinstance(message, list):
        message = bytes(message).decode(errors="replace")
    who = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "?"
    pid = entry.get("SYSLOG_PID") or entry.get("_PID")
    return f"{who}{f'[{pid}]' if pid else ''}: {message or ''}".rstrip("\n")


class JournalFollow:
    """Follows the journal of each machine of `directories` (its output directory, by its name)
    from the wall-clock time `since`, giving each entry to `show(machine, line)`."""

    def __init__(
        self, directories: Mapping[str, Path], since: float, show: Callable[[str, str], None]
    ) -> None:
        self._journals = {name: directory / "journal" for name, directory in directories.items()}
        self._since = since
        self._show = show
        self._cursors: dict[str, str] = {}  # the last entry shown of each machine's journal
        self._followers: dict[str, subprocess.Popen[bytes]] = {}
        self._next_start: dict[str, float] = {}  # when a machine's ended follower may start again
        self._selector = selectors.DefaultSelector()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="herd-journals", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _command(self, name: str, *options: str) -> list[str]:
        """journalctl on `name`'s journal, from the entry after the last shown (or from `since`)."""
        cursor = self._cursors.get(name)
        start = f"--after-cursor={cursor}" if cursor else f"--since=@{self._since:.6f}"
        journal = self._journals[name]
        return ["journalctl", f"--directory={journal}", start, "--quiet", "--output=json", *options]

    def _start_new(self) -> None:
        """Start a journalctl for each journal that has a file and no follower."""
        now = time.monotonic()
        for name, journal in self._journals.items():
            if name in self._followers or self._next_start.get(name, 0.0) > now:
                continue
            if next(journal.glob("*/*.journal"), None) is None:
                continue
            command = ["setpriv", "--pdeathsig", "KILL", *self._command(name, "--follow", "--no-tail")]
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    process_group=0,  # the terminal's Ctrl-C is herd's, not its helpers'
                )
            except OSError as error:  # no setpriv: the journal is read once, at the end
                self._show(name, f"(cannot follow the journal: {error})")
                self._journals = {other: path for other, path in self._journals.items() if other != name}
                continue
            assert process.stdout is not None
            os.set_blocking(process.stdout.fileno(), False)
            self._followers[name] = process
            self._selector.register(process.stdout, selectors.EVENT_READ, (name, bytearray()))

    def _follow(self) -> None:
        while not self._stopped.is_set():
            self._start_new()
            if not self._selector.get_map():
                self._stopped.wait(LOOK)
                continue
            for key, _ in self._selector.select(LOOK):
                self._read(key.fileobj, *key.data)  # type: ignore[arg-type]

    def _read(self, stream: IO[bytes], name: str, pending: bytearray) -> None:
        """Show the entries a journalctl wrote; its output's unfinished last line waits in `pending`."""
        data = stream.read()
        if data is None:  # nothing after all
            return
        if not data:  # it ended
            self._selector.unregister(stream)
            self._ended(name)
            return
        pending += data
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        self._show_entries(name, lines)

    def _ended(self, name: str) -> None:
        """Reap `name`'s follower, which ended; a later look starts another."""
        process = self._followers.pop(name)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self._next_start[name] = time.monotonic() + LOOK

    def _show_entries(self, name: str, lines: Sequence[bytes | bytearray]) -> None:
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self._cursors[name] = entry.get("__CURSOR", self._cursors.get(name))
            self._show(name, entry_line(entry))

    def _catch_up(self, name: str) -> None:
        """Show what `name`'s journal holds beyond what its follower showed (journalctl follows
        with some delay, and a machine may have booted after the last look)."""
        try:
            result = subprocess.run(
                self._command(name),
                capture_output=True,
                timeout=CATCH_UP_TIMEOUT,
                check=False,
                process_group=0,
            )
        except (OSError, subprocess.TimeoutExpired):
            return
        self._show_entries(name, result.stdout.splitlines())

    def stop(self) -> None:
        """End every journalctl, then show the rest of the journals until now."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        for key in list(self._selector.get_map().values()):
            self._read(key.fileobj, *key.data)  # type: ignore[arg-type]
        self._selector.close()
        for process in self._followers.values():
            process.terminate()
        for process in self._followers.values():
            try:
                process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for name, journal in self._journals.items():
            if journal.is_dir():
                self._catch_up(name)
