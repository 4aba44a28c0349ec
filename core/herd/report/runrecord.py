"""What happened in a run, as a tree the reports are written from (`herd.report.junit`,
`herd.report.htmlreport`).

`herd.report.log.RunLog` fills it as the run goes: each subtest or other section a node, each command the
script ran and each line logged a leaf, with the seconds since the run began. A command's output is
kept up to `OUTPUT_KEPT` bytes a stream, so that a run that prints gigabytes does not hold them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

OUTPUT_KEPT = 65536  # bytes of each of a command's streams that the record keeps
SUBTEST_PREFIX = "subtest: "


@dataclass
class Line:
    at: float
    text: str
    machine: str | None = None


@dataclass
class Command:
    at: float
    machine: str
    command: str
    status: int
    seconds: float
    stdout: bytes
    stderr: bytes
    stdout_size: int = 0  # the whole stream's size, of which the first OUTPUT_KEPT bytes are kept
    stderr_size: int = 0


@dataclass
class Section:
    at: float
    title: str
    seconds: float | None = None  # None while it runs
    failed: bool = False
    entries: list[Section | Command | Line] = field(default_factory=list)

    @property
    def subtest(self) -> str | None:
        """The subtest's name, if this section is one."""
        return self.title.removeprefix(SUBTEST_PREFIX) if self.title.startswith(SUBTEST_PREFIX) else None


@dataclass
class RunRecord:
    """One run: its sections, and how it ended (`result` is PASS, FAIL or INTERRUPTED)."""

    name: str
    started: float = field(default_factory=time.time)  # the wall-clock time it began
    root: Section = field(default_factory=lambda: Section(0.0, "run"))
    result: str | None = None
    seconds: float = 0.0
    error: str | None = None  # the one-line reason a run failed
    traceback: str | None = None

    def subtests(self) -> list[Section]:
        """The subtests of the run, in order, nested ones included."""
        found: list[Section] = []

        def visit(section: Section) -> None:
            for entry in section.entries:
                if isinstance(entry, Section):
                    if entry.subtest is not None:
                        found.append(entry)
                    visit(entry)

        visit(self.root)
        return found
