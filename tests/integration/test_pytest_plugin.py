"""herd's pytest plugin, tested as pytest tests its own plugins: by running pytest on test files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from herd.hooks.types import BackendInfo, Capability
from tests.conftest import assert_nothing_left, run_ids

TESTS = """
import pytest

@pytest.mark.herd(machines={"server": {}, "client-1": {}})
def test_two_machines(herd, server, client_1):
    herd.start_all()
    client_1.succeed("ping -c 1 server")
    assert herd.server is server and herd["client-1"] is client_1
    with herd.subtest("a subtest"):
        assert server.succeed("hostname").strip() == "server"

@pytest.mark.herd(machines={"a": {}})
def test_fails(a):
    a.succeed("echo to-the-journal > /dev/kmsg 2>/dev/null; logger -t demo 'something broke'; exit 3")

@pytest.mark.herd(machines={"slow": {}}, timeout=1)
def test_times_out(slow):
    slow.succeed("sleep 30")

@pytest.mark.herd(machines={"x": {}}, requires=["screenshot"])
def test_needs_a_capability(x):
    x.succeed("true")

def test_unmarked(herd):
    pass
"""


def test_marked_tests_get_their_machines_and_failures_report_them(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    pytester.makepyfile(TESTS)
    output = tmp_path / "out"
    junit = tmp_path / "junit.xml"
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "--herd-backend",
        backend.name,
        "--herd-output-dir",
        str(output),
        f"--junitxml={junit}",
        "-p",
        "no:cacheprovider",
        "-rs",
    )
    result.assert_outcomes(passed=1, failed=2, skipped=1, errors=1)
    assert time.monotonic() - started < 60
    text = result.stdout.str()
    for expected in (
        "herd: the end of a's journal",
        "herd: the end of a's console",
        "herd: the end of log.txt",
        "herd: logs",
        f"log, consoles and journals of this test: {output}/",
        "the test ran past its timeout of 1 s",
        "of machine 'x' lacks the 'screenshot' capability",
        "uses the herd fixture without @pytest.mark.herd",
    ):
        assert expected in text, expected
    report = junit.read_text()
    assert "herd: the end of a" in report and "herd: the end of log.txt" in report and str(output) in report
    if Capability.SYSTEMD in backend.capabilities:
        assert "something broke" in result.stdout.str() and "something broke" in report
    ids = run_ids(output)
    assert len(ids) == 3  # the skipped and the unmarked test started nothing
    for run_id in ids:
        assert_nothing_left(run_id)


def test_tests_run_in_parallel_under_xdist_without_colliding(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    test = """
import pytest

@pytest.mark.herd(machines={{"a": {{}}, "b": {{}}}})
def test_{n}(herd, a, b):
    herd.start_all()
    a.succeed("ping -c 1 b")
    b.succeed("ping -c 1 a")
    assert a.succeed("ip -4 -o addr show eth0").split()[3] == "192.168.1.1/24"
"""
    pytester.makepyfile(**{f"test_parallel_{n}": test.format(n=n) for n in range(6)})
    output = tmp_path / "out"
    result = pytester.runpytest_subprocess(
        "-n", "3", "--herd-backend", backend.name, "--herd-output-dir", str(output), "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=6)
    ids = run_ids(output)
    assert len(set(ids)) == 6
    for run_id in ids:
        assert_nothing_left(run_id)
