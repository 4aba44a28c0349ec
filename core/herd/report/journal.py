"""A machine's journal as text, read from its output directory with the host's journalctl.

Every backend's machine writes its journal to `<output>/<machine>/journal`; where that holds
nothing (a machine that never booted far enough), its console (`console.log`) stands in.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

TAIL_LINES = 20
READ_TIMEOUT = 10.0  # seconds journalctl gets to read a journal
CONSOLE_READ = 1 << 20  # bytes of a console log read, from its end


def _this_runs(journal: Path) -> Path:
    """The directory of the machine's journal of the latest run: journald keeps one per machine id,
    and an output directory given to several runs holds each run's (a machine's id is new at every
    run, and the same across its reboots)."""
    runs = [entry for entry in journal.iterdir() if entry.is_dir()]
    return max(runs, key=lambda entry: entry.stat().st_mtime) if runs else journal


def text(directory: Path, lines: int | None = None) -> str:
    """The machine's journal of the latest run (its last `lines` lines, or all of it), else the
    end of its console, else a note that there is neither."""
    journal = directory / "journal"
    if journal.is_dir():
        journal = _this_runs(journal)
        command = ["journalctl", f"--directory={journal}", "--no-pager", "--no-hostname"]
        try:
            result = subprocess.run(
                [*command, *(["-n", str(lines)] if lines is not None else [])],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=READ_TIMEOUT,
                check=False,
                process_group=0,  # the terminal's Ctrl-C is herd's, not its helpers'
            )
            if result.stdout.strip() and result.stdout.strip() != "-- No entries --":
                return result.stdout
        except (OSError, subprocess.TimeoutExpired):
            pass
    console = directory / "console.log"
    if console.exists():
        found = console.read_bytes()[-CONSOLE_READ:].decode(errors="replace").splitlines()
        return "\n".join(found[-lines:] if lines is not None else found)
    return "(no journal or console output)"


def machine_directories(output_dir: Path) -> list[Path]:
    """The directories of a run's output that hold a machine's journal or console, by name."""
    return sorted(
        p
        for p in output_dir.iterdir()
        if p.is_dir() and ((p / "journal").is_dir() or (p / "console.log").exists())
    )


def tail(directory: Path) -> str:
    """The end of the machine's journal (or console): what a failure report shows."""
    return text(directory, TAIL_LINES)
