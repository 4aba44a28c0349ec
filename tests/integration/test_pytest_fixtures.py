"""`herd.testing.machines`: machines as pytest fixtures of a scope, run by pytester on test files."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.hooks.types import BackendInfo
from tests.conftest import assert_nothing_left, run_ids


def run_pytest(pytester: pytest.Pytester, backend: BackendInfo, output: Path, *args: str) -> pytest.RunResult:
    """pytest in a process of its own, on `backend`, its runs' output under `output`."""
    common = ("--herd-backend", backend.name, "--herd-output-dir", str(output), "-p", "no:cacheprovider")
    return pytester.runpytest_subprocess(*common, *args)


def assert_runs_left_nothing(output: Path, runs: int) -> None:
    """`runs` runs, each with a directory under `output`, and nothing of them left on the host."""
    ids = run_ids(output)
    assert len(set(ids)) == runs
    for run_id in ids:
        assert_nothing_left(run_id)


SHARED_MODULE = """
import urllib.request

import herd.testing

SERVE = "nohup python3 -m http.server 80 --directory /srv >/dev/null 2>&1 &"


@herd.testing.machines({"server": {"files": {"/srv/page": "the page\\n"}}, "client": {}}, scope="module")
def web(machines):
    \"\"\"A server and a client, serving when a test starts.\"\"\"
    machines.start_all()
    machines.server.succeed(SERVE)
    machines.server.wait_for_open_port(80, timeout=30)


@herd.testing.machines({"broken": {}}, scope="module")
def broken(machines):
    machines.broken.succeed("echo cannot set up; exit 4")


def test_first(web):
    web.server.succeed("echo from-the-first-test > /srv/note")


def test_second(web):
    assert web.server.succeed("cat /srv/note").strip() == "from-the-first-test"


def test_a_free_host_port(web):
    port = web.server.forward_port(0, 80)
    assert port != 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/page", timeout=10) as response:
        assert response.read() == b"the page\\n"


def test_fails(web):
    web.client.succeed("exit 3")


def test_needs_a_broken_fixture(broken):
    pass
"""


def test_a_module_fixture_boots_once_for_the_module_and_reports_failures(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    pytester.makepyfile(test_shared=SHARED_MODULE)
    output = tmp_path / "out"
    result = run_pytest(pytester, backend, output)
    result.assert_outcomes(passed=3, failed=1, errors=1)
    text = result.stdout.str()
    for expected in (
        "herd: the end of client's journal",
        f"log, consoles and journals of this test: {output / 'test_shared.py-web'}",
        "herd: the end of broken's console",  # the fixture failed while setting its run up
        f"log, consoles and journals of this test: {output / 'test_shared.py-broken'}",
        "exit 4",
    ):
        assert expected in text, expected
    log = (output / "test_shared.py-web" / "log.txt").read_text()
    assert log.count("server: booted in") == 1 and log.count("client: booted in") == 1
    assert "FAIL test_shared.py-web" in log  # one of its tests failed
    assert sorted(path.name for path in output.iterdir()) == ["test_shared.py-broken", "test_shared.py-web"]
    assert_runs_left_nothing(output, 2)


SESSION_CONFTEST = """
import herd.testing


@herd.testing.machines({"shared": {}}, scope="session")
def fleet(machines):
    \"\"\"One machine for every module of the session.\"\"\"
"""


def test_a_session_fixture_serves_every_module(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    pytester.makeconftest(SESSION_CONFTEST)
    pytester.makepyfile(
        test_one="def test_writes(fleet):\n    fleet.shared.succeed('echo one > /root/mark')\n",
        test_two="def test_reads(fleet):\n    assert fleet.shared.succeed('cat /root/mark') == 'one\\n'\n",
    )
    output = tmp_path / "out"
    result = run_pytest(pytester, backend, output)
    result.assert_outcomes(passed=2)
    log = (output / "fleet" / "log.txt").read_text()
    assert log.count("shared: booted in") == 1 and "PASS fleet" in log
    assert_runs_left_nothing(output, 1)


def test_fixture_runs_under_xdist_get_their_own_output_and_ports(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    module = """
import herd.testing


@herd.testing.machines({"a": {}, "b": {}}, scope="module")
def pair(machines):
    machines.start_all()


def test_ping(pair):
    pair.a.succeed("ping -c 1 b")


def test_port(pair):
    assert pair.b.forward_port(0, 80) != 0
"""
    pytester.makepyfile(test_left=module, test_right=module)
    output = tmp_path / "out"
    result = run_pytest(pytester, backend, output, "-n", "2", "--dist", "loadscope")
    result.assert_outcomes(passed=4)
    directories = sorted(path.name for path in output.iterdir())
    assert len(directories) == 2 and all(name.endswith(("-gw0", "-gw1")) for name in directories)
    assert_runs_left_nothing(output, 2)


def test_keep_holds_every_run_until_the_session_ends(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
import pytest

import herd.testing


@herd.testing.machines({"shared": {}}, scope="module")
def fleet(machines):
    machines.start_all()


@pytest.mark.herd(machines={"kept": {}})
def test_fails(kept):
    kept.succeed("false")


@pytest.mark.herd(machines={"passing": {}})
def test_passes(passing):
    passing.succeed("true")


def test_uses_the_module_machine(fleet):
    fleet.shared.succeed("true")
"""
    )
    output = tmp_path / "out"
    result = run_pytest(pytester, backend, output, "--herd-keep")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*herd: --herd-keep kept these machines up:*",
            "*test_fails / kept: *",
            "*test_passes / passing: *",
            "*test_keep_holds_every_run_until_the_session_ends.py-fleet / shared: *",
        ]
    )
    assert_runs_left_nothing(output, 3)
