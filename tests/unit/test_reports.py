"""The reports written from a run's record (no root: a RunLog fed by hand, as the driver feeds it)."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from pathlib import Path

from herd.report import htmlreport, junit
from herd.report.log import RunLog


def _logged(tmp_path: Path, fail: bool) -> RunLog:
    log = RunLog(tmp_path / "log.txt", terminal=None, name="unit")
    log.command("m", "true", status=0, seconds=0.01, stdout=b"", stderr=b"")
    with contextlib.suppress(RuntimeError), log.section("subtest: outer"), log.section("subtest: inner"):
        log.command("m", "echo <b>", status=0, seconds=0.02, stdout=b"<script>x</script>\x1b[2J", stderr=b"")
        if fail:
            raise RuntimeError("boom")
    if fail:
        log.failure("m: command `false` failed", "Traceback …\nRuntimeError: boom\x07")
    log.end("FAIL" if fail else "PASS", 1.5)
    return log


def test_nested_subtests_are_testcases_and_a_failure_fails_them_and_the_whole(tmp_path: Path) -> None:
    log = _logged(tmp_path, fail=True)
    log.close()
    junit.write([(log.record, tmp_path)], tmp_path / "junit.xml")
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "3")
    failed = {case.get("name"): case.find("failure") is not None for case in suite.iter("testcase")}
    assert failed == {"outer": True, "inner": True, "unit": True}
    text = (tmp_path / "junit.xml").read_text()
    assert "\x07" not in text and "\x1b" not in text  # XML 1.0 cannot hold them


def test_a_passing_record_has_no_failure_and_the_html_escapes_machine_output(tmp_path: Path) -> None:
    log = _logged(tmp_path, fail=False)
    log.close()
    root = junit.testsuite(log.record, tmp_path)
    assert (root.get("tests"), root.get("failures")) == ("3", "0")
    page = (tmp_path / "log.html").read_text()
    assert page == htmlreport.render(log.record, tmp_path)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "\x1b" not in page and "\\x1b[2J" in page
    assert page.count('<details class="section done">') == 2  # both folded
