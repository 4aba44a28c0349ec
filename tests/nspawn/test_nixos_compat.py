"""The NixOS test driver's globals and methods on containers: what a ported script relies on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from herd import CapabilityError, PollingConditionFailed, Test
from herd.hooks.manager import Plugins
from herd.hooks.types import Capability
from herd.run.driver import Outcome
from tests.conftest import run_and_check

LISTEN_ON_A_UNIX_SOCKET = (
    "import socket, time; s = socket.socket(socket.AF_UNIX); s.bind('/run/probe.sock'); s.listen(); "
    "time.sleep(60)"
)


@pytest.fixture
def run_nspawn(tmp_path: Path) -> Callable[[Test], Outcome]:
    return lambda test: run_and_check(test, "nspawn", tmp_path / "out")


def test_a_one_machine_script_gets_machine_and_the_nixos_drivers_names(run_nspawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = tmp_path / "payload"
    payload.write_bytes(b"line one\n\x00binary\xff'\"$(reboot)\n")
    script = f"""
t.assertIs(machine, server)
with machine.nested("copying", {{"via": "shell"}}):
    machine.copy_from_host_via_shell({str(payload)!r}, "/srv/deep er/payload")
digest = machine.succeed("sha256sum '/srv/deep er/payload'").split()[0]
machine.succeed({"python3 -c " + repr(LISTEN_ON_A_UNIX_SOCKET) + " >/dev/null 2>&1 &"!r})
machine.wait_for_open_unix_socket("/run/probe.sock", timeout=10)
machine.succeed("echo hello from the console > /dev/console")
machine.wait_for_console_text("hello from the console", timeout=10)
t.assertIn("Reached target herd.target", machine.get_console_log())
(driver.out_dir / "seen").write_text(" ".join([digest, os.path.basename(driver.out_dir), vlans[0].name]))
"""
    outcome = run_nspawn(Test(name="names", machines={"server": {}}, script=script))
    assert outcome.passed, outcome.error
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    assert (tmp_path / "out" / "seen").read_text() == f"{digest} out default"
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "server: copying via=shell" in log and "done: server: copying via=shell" in log


def test_a_polling_condition_that_breaks_between_commands_fails_the_test(run_nspawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = """
@polling_condition(seconds_interval=0)
def marker_there():
    "the marker file is there"
    machine.succeed("test -e /srv/marker")

machine.succeed("touch /srv/marker")
with marker_there:
    machine.succeed("true")
    machine.succeed("rm /srv/marker")
    machine.succeed("touch /srv/never-run")
"""
    outcome = run_nspawn(Test(name="polling", machines={"m": {}}, script=script))
    assert isinstance(outcome.error, PollingConditionFailed), outcome.error
    assert str(outcome.error).startswith(
        "polling condition 'the marker file is there' failed: CommandFailed:"
    )
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "$ touch /srv/never-run" not in log and "$ rm /srv/marker" in log  # the next one did not run


def test_wait_for_shutdown_and_join_all_follow_machines_that_power_themselves_off(run_nspawn) -> None:  # type: ignore[no-untyped-def]
    def script(a, b, start_all, join_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        a.execute("systemctl poweroff")
        a.wait_for_shutdown(timeout=30)
        assert not a.is_up()
        a.wait_for_shutdown()  # not running: returns at once
        a.start()
        assert a.succeed("echo again") == "again\n"
        for machine in (a, b):
            machine.execute("systemctl poweroff --no-block")
        join_all()
        assert not a.is_up() and not b.is_up()

    outcome = run_nspawn(Test(name="shutdown", machines={"a": {}, "b": {}}, script=script))
    assert outcome.passed, outcome.error


@pytest.mark.parametrize(
    ("call", "capability"),
    [
        ("machine.send_monitor_command('info status')", "monitor"),
        ("machine.wait_for_qmp_event(lambda event: True, timeout=1)", "monitor"),
        ("machine.send_console('x')", "console"),
        ("machine.get_tty_text(1)", "kernel"),
        ("machine.wait_until_tty_matches(1, 'login', timeout=1)", "kernel"),
        ("machine.dump_tty_contents(1)", "kernel"),
    ],
)
def test_vm_only_methods_name_the_capability_and_the_backends_that_have_it(
    run_nspawn, call: str, capability: str
) -> None:  # type: ignore[no-untyped-def]
    outcome = run_nspawn(Test(name="vm-only", machines={"m": {}}, script=call))
    assert isinstance(outcome.error, CapabilityError)
    method = call.split("(", maxsplit=1)[0].split(".")[1]
    assert str(outcome.error).startswith(
        f"m.{method}() needs the {capability!r} capability, which backend 'nspawn' (container) does not have;"
    )
    able = Plugins().backends_with(Capability(capability))
    expected = f"backends that can: {', '.join(able)}" if able else "no installed backend can"
    assert expected in str(outcome.error)
