"""Machines on the host image: the host's software, their own identity, nothing private."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from herd import Test
from herd.hooks.types import BackendInfo, Capability

# Units a herd machine runs without being asked: the base system's, and herd's own.
BASE_SERVICES = {
    "herd-network.service",
    "systemd-journald.service",
    "systemd-journal-flush.service",
    "systemd-sysusers.service",
    "systemd-remount-fs.service",
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-update-utmp.service",
    "systemd-sysctl.service",
    "systemd-user-sessions.service",  # the one unit of multi-user.target's vendor wants kept
}
HOST_UNIT_DIR = Path("/etc/systemd/system")


def host_enabled_units() -> set[str]:
    """The units the host itself has enabled (its .wants and .requires directories in /etc)."""
    return {
        entry.name
        for directory in HOST_UNIT_DIR.iterdir()
        if directory.is_dir() and directory.name.endswith((".wants", ".requires"))
        for entry in directory.iterdir()
    }


def test_machines_run_the_host_os_with_their_own_identity(run_test: Callable, backend: BackendInfo) -> None:  # type: ignore[type-arg]
    host_machine_id = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
    marker = Path("/root") / f"herd-private-{os.getpid()}"
    marker.write_text("secret")

    def script(alpha, beta, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        assert alpha.succeed("hostname").strip() == "alpha"
        ids = {alpha.succeed("cat /etc/machine-id"), beta.succeed("cat /etc/machine-id")}
        assert len(ids) == 2 and host_machine_id + "\n" not in ids
        assert alpha.succeed("cat /etc/os-release") == Path("/etc/os-release").read_text()
        assert alpha.fail(f"test -e {marker}") == ""  # /root is the machine's own, empty
        assert alpha.succeed("getent hosts beta").split()[0] == "192.168.1.2"
        alpha.fail("touch /usr/herd-was-here")  # /usr is the host's, read-only
        alpha.succeed("echo changed > /etc/issue")  # /etc is copy-on-write
        assert Path("/etc/issue").read_text() != "changed\n"
        if Capability.SUID in backend.capabilities:
            alpha.succeed("su -s /bin/sh nobody -c 'ping -c 1 -W 2 beta'")
        if Capability.SYSTEMD in backend.capabilities:
            assert alpha.succeed("systemctl is-system-running").strip() == "running"
            listing = alpha.succeed("systemctl list-units --type=service --state=active --no-legend --plain")
            active = {line.split()[0] for line in listing.splitlines()}
            assert active <= BASE_SERVICES | {
                "systemd-logind.service",
                "dbus.service",
                "user@65534.service",
                "user-runtime-dir@65534.service",
            }, active

    try:
        outcome = run_test(Test(name="image", machines={"alpha": {}, "beta": {}}, script=script))
    finally:
        marker.unlink()
    assert outcome.passed, outcome.error


HARDENED_UNIT = """[Service]
DynamicUser=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
StateDirectory=hardened
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /var/lib/hardened
"""


def test_hardened_units_and_mounts_work_in_a_machine(
    run_test: Callable,  # type: ignore[type-arg]
    require: Callable[[Capability], None],
) -> None:
    """What services and tests ask of a machine still works where machines are confined: a unit
    with systemd's sandboxing (a dynamic user, a read-only system, private /tmp and devices),
    mounts and namespaces of the machine's own."""
    require(Capability.SYSTEMD)

    def script(m, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        m.wait_for_unit("hardened.service")
        m.wait_for_open_port(8080)
        assert m.succeed("ps -o user= -p $(systemctl show -p MainPID --value hardened)") == "hardened\n"
        m.succeed("mkdir -p /mnt/t && mount -t tmpfs tmpfs /mnt/t && touch /mnt/t/x && umount /mnt/t")
        m.succeed("unshare --mount --pid --fork true")

    outcome = run_test(
        Test(name="hardened", machines={"m": {"units": {"hardened.service": HARDENED_UNIT}}}, script=script)
    )
    assert outcome.passed, outcome.error


def test_machines_reach_multi_user_and_default_target_without_the_hosts_enabled_units(
    run_test: Callable,  # type: ignore[type-arg]
    require: Callable[[Capability], None],
) -> None:
    """A script may wait for multi-user.target, as almost every NixOS test does first, and a
    machine still starts only what the test declares."""
    require(Capability.SYSTEMD)
    enabled = host_enabled_units()

    def script(m, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        m.wait_for_unit("multi-user.target", timeout=30)
        m.wait_for_unit("default.target", timeout=30)
        listing = m.succeed("systemctl list-units --all --state=active --no-legend --plain")
        active = {line.split()[0] for line in listing.splitlines()}
        assert "multi-user.target" in active and "herd.target" in active, active
        assert not active & enabled, f"the host's enabled units run in a machine: {active & enabled}"
        assert (
            m.succeed("systemctl is-active dbus.service systemd-logind.service || true")
            == "inactive\ninactive\n"
        )

    outcome = run_test(Test(name="multiuser", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error
