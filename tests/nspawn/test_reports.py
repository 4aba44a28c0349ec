"""The reports of a run: `--junit-xml` checked against the JUnit schema CI servers read, and
`log.html` opened in a real browser (headless Chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

FAILING = '''
import herd

test = herd.Test(
    name="reported",
    machines={"server": {}, "client": {}},
    script="""
start_all()
with subtest("the server answers"):
    client.succeed("ping -c 1 server")
with subtest("the file is there"):
    server.succeed("echo hello > /tmp/x; cat /tmp/x")
    client.succeed("printf 'a\\\\x1b[31mred' >&2; test -e /srv/missing-file")
""",
)
'''
CHROMIUM = shutil.which("chromium")


@dataclass
class Reported:
    status: int
    junit: Path
    html: Path


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Reported:
    """One failing run with two subtests, through `herd run --junit-xml`."""
    directory = tmp_path_factory.mktemp("reports")
    (directory / "reported.py").write_text(FAILING)
    herd = str(Path(sys.executable).with_name("herd"))
    junit, output = directory / "junit.xml", directory / "out"
    command = [herd, "run", "reported.py", "-b", "nspawn", "-o", str(output), "--junit-xml", str(junit)]
    finished = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=120, check=False
    )
    return Reported(finished.returncode, junit, output / "log.html")


@pytest.fixture(scope="module")
def junit_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """junit-10.xsd, the schema of Jenkins' xUnit plugin, from the source distribution of the
    installed pytest, whose own tests check its JUnit reports against it."""
    directory = tmp_path_factory.mktemp("schema")
    sources = f"pytest=={pytest.__version__}"
    download = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            sources,
            "--no-binary=:all:",
            "--no-deps",
            "-q",
            "-d",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if download.returncode != 0:
        pytest.skip(
            f"cannot download pytest's source distribution for its JUnit schema: {download.stderr[-300:]}"
        )
    (archive,) = directory.glob("pytest-*.tar.gz")
    with tarfile.open(archive) as sources:
        member = next(m for m in sources.getmembers() if m.name.endswith("/junit-10.xsd"))
        extracted = sources.extractfile(member)
        assert extracted is not None
        schema = directory / "junit-10.xsd"
        schema.write_bytes(extracted.read())
    return schema


def test_the_junit_report_validates_and_names_the_failure(reported: Reported, junit_schema: Path) -> None:
    import xmlschema

    assert reported.status == 1
    xmlschema.XMLSchema(str(junit_schema)).validate(str(reported.junit))
    suite = ET.parse(reported.junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "reported"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["the server answers", "the file is there", "reported"]
    assert cases["the server answers"].find("failure") is None
    failure = cases["the file is there"].find("failure")
    assert failure is not None and "test -e /srv/missing-file` failed (exit status 1)" in (failure.text or "")
    assert "\x1b" not in (failure.text or "") and "\\x1b[31mred" in (failure.text or "")
    err = cases["the file is there"].findtext("system-err") or ""
    assert "the end of client's journal" in err and "the end of server's journal" in err
    assert "client: $ ping -c 1 server  -> exit 0" in (
        cases["the server answers"].findtext("system-out") or ""
    )


def test_a_passing_run_reports_no_failure(tmp_path: Path) -> None:
    herd = str(Path(sys.executable).with_name("herd"))
    junit = tmp_path / "junit.xml"
    command = [
        herd,
        "run",
        "examples/ping.py",
        "-b",
        "nspawn",
        "-o",
        str(tmp_path / "out"),
        "--junit-xml",
        str(junit),
    ]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    assert "PASS ping" in (tmp_path / "out" / "log.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium; .ci/run does)")
def test_the_html_report_shows_the_failure_and_opens_a_folded_subtest(reported: Reported) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(reported.html.as_uri())
            assert page.locator("h1").inner_text().startswith("FAIL reported")
            failing = page.locator("details.command.nonzero summary").filter(has_text="/srv/missing-file")
            assert failing.count() == 1 and failing.first.is_visible()  # its subtest is open
            passed = page.locator("details.section").filter(has_text="subtest: the server answers").first
            ping = passed.locator("summary").filter(has_text="ping -c 1 server")
            assert not ping.is_visible()  # a subtest that passed is folded
            passed.locator("summary").first.click()
            assert ping.is_visible()
            machines = page.locator("details.machine-logs summary")
            assert machines.all_inner_texts() == ["client", "server"]
        finally:
            browser.close()
