"""`herd run --junit-xml FILE`: the runs of a test file as a JUnit XML report, which CI servers read.

One `testsuite` per test of the file, in a `testsuites` root. Each subtest of the script is a
`testcase`, and the script as a whole is one more, named after the test: a failure fails the
subtest it happened in (and those around it) and the whole. A failed testcase's `failure` carries
the reason (the failing command and the end of its output, for a command) and the traceback; its
`system-err` the end of each machine's journal, as pytest's report shows them. Its `system-out`
holds what happened in it, one line per command and logged line. An interrupted run's whole is an
`error`. The format is the one Jenkins' xUnit plugin and pytest write (junit-10.xsd).
"""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from herd.report import journal
from herd.report.runrecord import Command, Line, RunRecord, Section

# Characters XML 1.0 cannot hold at all, even escaped: what a machine printed may contain them.
_NOT_XML = dict.fromkeys((*range(9), 11, 12, *range(14, 32)), "�")


def _clean(text: str) -> str:
    return text.translate(_NOT_XML)


def _lines(section: Section) -> str:
    """What happened in `section`, one line per command and logged line, nested sections included."""
    out: list[str] = []

    def visit(entries: Iterable[Section | Command | Line], depth: int) -> None:
        indent = "  " * depth
        for entry in entries:
            if isinstance(entry, Section):
                out.append(f"[{entry.at:8.3f}] {indent}{entry.title}")
                visit(entry.entries, depth + 1)
            elif isinstance(entry, Command):
                out.append(
                    f"[{entry.at:8.3f}] {indent}{entry.machine}: $ {entry.command}  -> exit "
                    f"{entry.status} in {entry.seconds:.3f} s"
                )
            else:
                who = f"{entry.machine}: " if entry.machine else ""
                out.append(f"[{entry.at:8.3f}] {indent}{who}{entry.text}")

    visit(section.entries, 0)
    return "\n".join(out)


def _journals(output_dir: Path | None) -> str:
    if output_dir is None or not output_dir.is_dir():
        return ""
    return "\n".join(
        f"--- the end of {directory.name}'s journal ---\n{journal.tail(directory)}"
        for directory in journal.machine_directories(output_dir)
    )


def _testcase(
    suite: ET.Element,
    record: RunRecord,
    section: Section,
    *,
    name: str,
    seconds: float,
    failed: bool,
    journals: str,
) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"herd.{record.name}", name=name, time=f"{seconds:.3f}")
    if failed and record.result == "INTERRUPTED" and section is record.root:
        ET.SubElement(case, "error", message="the run was interrupted", type="Interrupted")
    elif failed:
        message = record.error or "failed"
        failure = ET.SubElement(case, "failure", message=_clean(message.splitlines()[0]), type="herd.failure")
        failure.text = _clean(f"{message}\n\n{record.traceback or ''}")
    out = ET.SubElement(case, "system-out")
    out.text = _clean(_lines(section))
    if failed and journals:
        ET.SubElement(case, "system-err").text = _clean(journals)


def testsuite(record: RunRecord, output_dir: Path | None) -> ET.Element:
    """The `testsuite` of one run; the machines' journals are read from `output_dir`."""
    subtests = record.subtests()
    passed = record.result == "PASS"
    suite = ET.Element(
        "testsuite",
        name=record.name,
        tests=str(len(subtests) + 1),
        failures=str(sum(s.failed for s in subtests) + (record.result == "FAIL")),
        errors=str(int(record.result == "INTERRUPTED")),
        skipped="0",
        time=f"{record.seconds:.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.started)),
        hostname=socket.gethostname(),
    )
    journals = "" if passed else _journals(output_dir)
    for section in subtests:
        name, seconds = section.subtest or section.title, section.seconds or 0.0
        _testcase(
            suite, record, section, name=name, seconds=seconds, failed=section.failed, journals=journals
        )
    _testcase(
        suite,
        record,
        record.root,
        name=record.name,
        seconds=record.seconds,
        failed=not passed,
        journals=journals,
    )
    return suite


def write(runs: Iterable[tuple[RunRecord, Path | None]], path: Path) -> None:
    """Write the report of `runs` (each run's record and output directory) to `path`."""
    root = ET.Element("testsuites", name="herd")
    suites = [testsuite(record, output_dir) for record, output_dir in runs]
    for attribute in ("tests", "failures", "errors"):
        root.set(attribute, str(sum(int(suite.get(attribute, "0")) for suite in suites)))
    root.set("time", f"{sum(float(suite.get('time', '0')) for suite in suites):.3f}")
    root.extend(suites)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
