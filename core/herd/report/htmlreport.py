"""`log.html`: a run's report in one file that opens offline in any browser.

Written beside `log.txt` when a run ends, from its record (`herd.report.runrecord`): how it ended and why,
then the log nested as it happened, each subtest and wait a fold of its own, each command with its
status, duration and output, screenshots where they were taken; then each machine's journal and
console. Failed parts are open and the page scrolls to the innermost one; everything else is
folded. No script or style is fetched from anywhere: the file holds all it shows.
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import Path

from herd.report import journal
from herd.report.log import printable
from herd.report.runrecord import Command, Line, RunRecord, Section

SCREENSHOT_PREFIX = "screenshot: "
READERS = 8  # journals read at once
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1.PASS { color: #17692d; } h1.FAIL { color: #b3261e; } h1.INTERRUPTED { color: #8a6100; }
pre { background: #f4f4f4; padding: .5em; overflow-x: auto; white-space: pre-wrap; margin: .2em 0; }
pre.stderr { background: #fbeeee; }
details { margin: .15em 0 .15em 1em; }
summary { cursor: pointer; }
.at { color: #888; font-family: monospace; }
.machine { font-weight: 600; }
.command code { font-weight: 600; }
.nonzero > summary .status { color: #b3261e; }
.failed > summary { color: #b3261e; font-weight: 600; }
#failure { border-left: 4px solid #b3261e; padding-left: 1em; }
img { max-width: 100%; border: 1px solid #ccc; }
"""
# Open the innermost failed part and bring it into view.
SCRIPT = """
const failed = document.querySelectorAll("details.failed");
if (failed.length) failed[failed.length - 1].scrollIntoView({block: "center"});
"""


def _at(seconds: float) -> str:
    return f'<span class="at">[{seconds:8.3f}]</span>'


def _text(data: bytes) -> str:
    return escape(printable(data.decode(errors="replace")))


def _stream(name: str, data: bytes, size: int) -> str:
    if not size:
        return ""
    cut = f"\n… ({size - len(data)} more bytes)" if size > len(data) else ""
    return f'<pre class="{name}">{_text(data)}{escape(cut)}</pre>'


def _command(command: Command) -> str:
    classes = "command nonzero" if command.status else "command"
    summary = (
        f"<summary>{_at(command.at)} <span class='machine'>{escape(command.machine)}</span> "
        f"<code>$ {escape(printable(command.command))}</code> "
        f"<span class='status'>exit {command.status}</span> in {command.seconds:.3f} s</summary>"
    )
    output = _stream("stdout", command.stdout, command.stdout_size)
    output += _stream("stderr", command.stderr, command.stderr_size)
    return f'<details class="{classes}">{summary}{output or "<pre>(no output)</pre>"}</details>'


def _line(line: Line) -> str:
    machine = f"<span class='machine'>{escape(line.machine)}</span> " if line.machine else ""
    shown = f'<div class="line">{_at(line.at)} {machine}{escape(line.text)}</div>'
    if line.text.startswith(SCREENSHOT_PREFIX):
        picture = Path(line.text.removeprefix(SCREENSHOT_PREFIX))
        if picture.is_file():
            data = base64.b64encode(picture.read_bytes()).decode()
            shown += f'<img alt="{escape(picture.name)}" src="data:image/png;base64,{data}">'
    return shown


def _section(section: Section) -> str:
    state = "failed" if section.failed else ("running" if section.seconds is None else "done")
    took = f" ({section.seconds:.2f} s)" if section.seconds is not None else " (did not end)"
    opened = " open" if section.failed else ""
    inner = "".join(_entry(entry) for entry in section.entries)
    return (
        f'<details class="section {state}"{opened}><summary>{_at(section.at)} '
        f"{escape(section.title)}{took}{' failed' if section.failed else ''}</summary>{inner}</details>"
    )


def _entry(entry: Section | Command | Line) -> str:
    if isinstance(entry, Section):
        return _section(entry)
    if isinstance(entry, Command):
        return _command(entry)
    return _line(entry)


def _machine(directory: Path) -> str:
    console = directory / "console.log"
    console_text = console.read_bytes().decode(errors="replace") if console.exists() else "(none)"
    return (
        f"<details class='machine-logs'><summary class='machine'>{escape(directory.name)}</summary>"
        f"<h3>journal</h3><pre>{escape(printable(journal.text(directory)))}</pre>"
        f"<h3>console</h3><pre>{escape(printable(console_text))}</pre></details>"
    )


def _machines(output_dir: Path) -> str:
    """Each machine's journal and console; the journals are read (by journalctl, a process each)
    several at a time, for a run of a hundred machines."""
    directories = journal.machine_directories(output_dir)
    if not directories:
        return ""
    with ThreadPoolExecutor(max_workers=min(len(directories), READERS)) as pool:
        return "<h2>Machines</h2>" + "".join(pool.map(_machine, directories))


def render(record: RunRecord, output_dir: Path) -> str:
    """The report of `record` as one HTML page; the machines' logs are read from `output_dir`."""
    result = record.result or "UNFINISHED"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started))
    failure = ""
    if record.error is not None:
        failure = (
            f'<section id="failure"><h2>Why it failed</h2><pre>{escape(record.error)}</pre>'
            f"<details><summary>traceback</summary><pre>{escape(record.traceback or '')}</pre></details>"
            "</section>"
        )
    log = "".join(_entry(entry) for entry in record.root.entries)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{result} {escape(record.name)}</title><style>{STYLE}</style></head><body>"
        f'<h1 class="{result}">{result} {escape(record.name)} in {record.seconds:.2f} s</h1>'
        f"<p>started {started}</p>{failure}<h2>Log</h2>{log}{_machines(output_dir)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write(record: RunRecord, output_dir: Path, path: Path) -> None:
    """Write the report of `record` to `path`."""
    path.write_text(render(record, output_dir))
