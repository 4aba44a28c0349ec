"""What the terminal shows of a run's machines as they run: their consoles (`serial_stdout_on()`,
`herd run --console`) and their journals (`--console`), each line under its machine's name in the
machine's colour, as the NixOS test driver shows its machines' serial output.

The consoles are echoed by `herd.linux.console.ConsoleEcho`, the journals followed by
`herd.report.journalfollow.JournalFollow`; both write through the run's log, whose terminal keeps
them apart from its status line.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from herd.linux.console import ConsoleEcho
from herd.report.journalfollow import JournalFollow

if TYPE_CHECKING:
    from pathlib import Path

    from herd.report.log import RunLog
    from herd.run.fleet import Fleet


class LiveOutput:
    """The live output of one run's machines; `stop()` ends all of it (at teardown)."""

    def __init__(self, fleet: Fleet, log: RunLog, output_dir: Path) -> None:
        self._fleet = fleet
        self._log = log
        self._output_dir = output_dir
        self._since = time.time()  # the journals are followed from the run's start
        self._echo: ConsoleEcho | None = None
        self._journals: JournalFollow | None = None

    def consoles(self, on: bool) -> None:
        """Echo every machine's console from now on, or stop echoing them."""
        if self._echo is None:
            if not on:
                return
            machines = self._fleet.machines
            self._echo = ConsoleEcho(
                list(machines),
                lambda name: machines[name].console_text(),
                lambda name, line: self._log.machine_line(name, "console", line),
            )
        self._echo.switch(on)

    def follow_journals(self) -> None:
        """Show every machine's journal entries as they are written, from the run's start."""
        if self._journals is None:
            self._journals = JournalFollow(
                {name: self._output_dir / name for name in self._fleet.machines},
                self._since,
                lambda name, line: self._log.machine_line(name, "journal", line),
            )
            self._journals.start()

    def stop(self) -> None:
        """Show what the consoles and journals hold until now, then stop following them."""
        if self._echo is not None:
            self._echo.stop()
        if self._journals is not None:
            self._journals.stop()
