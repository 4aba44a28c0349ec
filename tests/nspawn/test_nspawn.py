"""What is particular to the nspawn backend: its containers, boot order, consoles and stops."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from herd import MachineError, Test
from tests.conftest import assert_nothing_left


@pytest.fixture
def run_nspawn(tmp_path: Path) -> Callable[[Test], object]:
    def run(test: Test):  # type: ignore[no-untyped-def]
        outcome = test.run(backend="nspawn", output_dir=tmp_path / "out", terminal=None)
        assert_nothing_left(outcome.run_id)
        return outcome

    return run


def test_containers_share_the_hosts_kernel_and_boot_anew(run_nspawn: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    def script(m) -> None:  # type: ignore[no-untyped-def]
        assert m.succeed("uname -r").strip() == os.uname().release
        boot_id = m.succeed("cat /proc/sys/kernel/random/boot_id")
        m.crash()
        assert m.succeed("cat /proc/sys/kernel/random/boot_id") != boot_id  # a new boot, a new id
        assert m.succeed("stat -fc %T /sys/fs/cgroup").strip() == "cgroup2fs"

    outcome = run_nspawn(Test(name="kernel", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error
    console = (tmp_path / "out" / "m" / "console.log").read_text()
    assert console.count("Reached target herd.target") == 2  # the console keeps both boots


def test_the_network_is_plugged_before_network_target(run_nspawn: Callable) -> None:  # type: ignore[type-arg]
    unit = (
        "[Unit]\nAfter=network.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        "ExecStart=/bin/sh -c 'cat /sys/class/net/eth0/operstate > /srv/at-start'\n"
    )

    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.wait_for_unit("probe.service")
        assert m.succeed("cat /srv/at-start") == "up\n"
        assert m.get_unit_property("herd-network.service", "ActiveState") == "active"

    assert run_nspawn(
        Test(name="gate", machines={"m": {"units": {"probe.service": unit}}}, script=script)
    ).passed


def test_a_user_session_does_not_stall_power_off(run_nspawn: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.succeed("su -s /bin/sh nobody -c true")  # starts logind and a user manager
        m.wait_until_succeeds("systemctl is-active user@65534.service")

    assert run_nspawn(Test(name="session", machines={"m": {}}, script=script)).passed
    assert "m: powered off in" in (tmp_path / "out" / "log.txt").read_text()


def test_a_container_that_cannot_start_fails_with_its_console(run_nspawn: Callable) -> None:  # type: ignore[type-arg]
    test = Test(
        name="noboot",
        machines={"a": {"options": {"extra_args": ["--capability=nonsense"]}}},
        script="start_all()",
    )
    outcome = run_nspawn(test)
    assert isinstance(outcome.error, MachineError)
    message = str(outcome.error)
    assert message.startswith("machine a did not boot: systemd-nspawn exited with status")
    assert "nonsense" in message  # the console's tail says why


def test_unknown_options_are_refused_before_anything_starts() -> None:
    from herd import SpecError

    with pytest.raises(
        SpecError, match=r"field 'options': unknown option 'colour'; nspawn options: extra_args"
    ):
        Test(name="opts", machines={"a": {"backend": "nspawn", "options": {"colour": 1}}}, script="pass").run(
            terminal=None
        )
