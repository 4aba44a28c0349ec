"""A script written for the NixOS test driver runs unchanged: its shell (bash, `set -euo pipefail`,
no command text on any command line) and every keyword of the driver's Machine methods."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from herd import CapabilityError, CommandFailed, Test, WaitTimeout
from herd.hooks.types import BackendInfo, Capability
from herd.run.machine import Machine

WEB_UNIT = "[Service]\nExecStart=/usr/bin/python3 -m http.server 8124\n"


def test_commands_run_in_bash_with_errexit_nounset_pipefail_and_off_every_command_line(
    run_test: Callable,  # type: ignore[type-arg]
) -> None:
    def script(m: Machine) -> None:
        m.succeed("python3 -m http.server 8123 >/dev/null 2>&1 &")
        m.wait_for_open_port(8123, timeout=30)
        m.succeed("pkill -f 'http.server 8123'")  # kills the server, not the shell running pkill
        m.wait_for_closed_port(8123, timeout=30)
        m.fail("false | true")
        assert m.succeed("[[ 1 == 1 ]] && echo yes") == "yes\n"
        assert m.execute("echo $HERD_SURELY_UNSET; echo never") == (1, "")
        assert m.execute("false; echo never") == (1, "")
        marker = "herd-marker-54321"
        processes = m.succeed(f": {marker}; ps -eo args")
        assert "ps -eo args" in processes and marker not in processes, processes
        result: list[str] = []
        waiter = threading.Thread(target=lambda: result.append(m.succeed(f"sleep 2; : {marker}-running")))
        waiter.start()
        m.wait_until_succeeds("pgrep -x sleep", timeout=10)
        assert f"{marker}-running" not in m.succeed("ps -eo args")
        waiter.join()
        assert result == [""]

    outcome = run_test(Test(name="shell", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error


def test_execute_succeed_and_fail_take_the_drivers_keywords(
    run_test: Callable,  # type: ignore[type-arg]
) -> None:
    def script(m: Machine) -> None:
        m.start()
        assert m.execute("echo out; exit 3", check_return=False) == (-1, "out\n")
        assert m.execute("echo out; exit 3", True, True, 10) == (3, "out\n")
        started = time.monotonic()
        assert m.execute("sleep 1; touch /root/later", check_output=False) == (-2, "")
        assert time.monotonic() - started < 0.5
        m.fail("test -e /root/later")
        m.wait_for_file("/root/later", timeout=10)
        assert m.execute("echo begun; sleep 30", timeout=0.5) == (124, "begun\n")
        assert m.execute("echo unbounded", timeout=None) == (0, "unbounded\n")
        assert m.succeed("sleep 0.1; echo done", timeout=None) == "done\n"
        assert m.fail("echo slow; sleep 30", timeout=0.5) == "slow\n"  # killed: status 124, a failure
        with pytest.raises(WaitTimeout, match=r"^m: command `sleep 31` did not finish within 0\.5 s$"):
            m.succeed("sleep 31", timeout=0.5)
        m.wait_until_fails("pgrep -x sleep", timeout=10)

    outcome = run_test(Test(name="execute", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error


def test_the_other_methods_take_the_drivers_keywords(
    run_test: Callable,  # type: ignore[type-arg]
    backend: BackendInfo,
    tmp_path: Path,
) -> None:
    systemd = Capability.SYSTEMD in backend.capabilities
    source = tmp_path / "fixture.txt"
    source.write_text("from the host\n")

    def script(m: Machine) -> None:
        if Capability.REBOOT in backend.capabilities:
            m.start(allow_reboot=True)
        else:
            with pytest.raises(CapabilityError, match=r"^m\.start\(allow_reboot=True\) needs the 'reboot'"):
                m.start(allow_reboot=True)
            m.start(allow_reboot=False)
        started = time.monotonic()
        m.sleep(secs=0.3)
        assert time.monotonic() - started >= 0.3
        m.log(msg="a line from the script")
        m.copy_from_host(source=str(source), target="/srv/fixture.txt")
        m.wait_for_file(filename="/srv/fixture.txt", timeout=10)
        assert m.copy_from_vm(source="/srv/fixture.txt", target_dir="copied").read_text() == "from the host\n"
        assert m.wait_until_succeeds(command="cat /srv/fixture.txt", timeout=10) == "from the host\n"
        assert m.wait_until_fails(command="cat /srv/nothing", timeout=10) == ""
        if not systemd:
            return
        m.wait_for_unit(unit="multi-user.target", user=None, timeout=30)
        assert m.start_job(jobname="web.service", user=None)[0] == 0
        m.wait_for_open_port(port=8124, addr="127.0.0.1", timeout=30)
        m.require_unit_state(unit="web.service", require_state="active")
        assert m.get_unit_property(unit="web.service", property="ActiveState", user=None) == "active"
        assert m.get_unit_info(unit="web.service", user=None)["Id"] == "web.service"
        assert m.stop_job(jobname="web.service", user=None)[0] == 0
        m.wait_for_closed_port(port=8124, addr="127.0.0.1", timeout=30)
        assert m.systemctl(q="is-active web.service", user=None) == (3, "inactive\n")
        with pytest.raises(CommandFailed, match="is 'inactive', expected 'active'"):
            m.require_unit_state("web.service")
        assert m.start_job("web.service --no-block")[0] == 0  # the name goes to the shell as it is
        m.wait_for_unit("web", timeout=30)

    units = {"web.service": WEB_UNIT}
    outcome = run_test(
        Test(name="keywords", machines={"m": {"units": units} if systemd else {}}, script=script)
    )
    assert outcome.passed, outcome.error
    assert "m: a line from the script" in (tmp_path / "out" / "log.txt").read_text()
