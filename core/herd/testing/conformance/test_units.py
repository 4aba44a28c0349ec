"""Declared services and units, and the waits on them (the 'systemd' capability)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from herd import CommandFailed

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytest_plugin import Herd


WEB = "[Service]\nExecStart=/usr/bin/python3 -m http.server 8000 --directory /srv\n"
BROKEN = "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 7'\n"
ONESHOT = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo done > /srv/oneshot'\n"


@pytest.mark.herd(
    machines={"m": {"units": {"web.service": WEB, "broken.service": BROKEN, "once.service": ONESHOT}}},
    requires=["systemd"],
)
def test_declared_units_start_at_boot_and_can_be_waited_for(m: Machine) -> None:
    m.wait_for_unit("web.service", timeout=30)
    m.wait_for_open_port(8000, timeout=30)
    m.wait_for_unit("once", timeout=30)
    assert m.succeed("cat /srv/oneshot") == "done\n"
    assert m.get_unit_info("web.service")["ActiveState"] == "active"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="reached state 'failed'"):
        m.wait_for_unit("broken.service", timeout=30)
    with pytest.raises(CommandFailed, match="does not exist"):
        m.wait_for_unit("missing.service", timeout=30)
    assert time.monotonic() - started < 10
    m.systemctl("stop web.service")
    m.wait_for_closed_port(8000, timeout=30)
    m.start_job("web.service")
    m.wait_for_unit("web.service", timeout=30)
    m.wait_for_unit("network-online.target", timeout=30)


@pytest.mark.herd(machines={"m": {"services": ["systemd-journald"]}}, requires=["systemd"])
def test_named_services_start(m: Machine) -> None:
    m.wait_for_unit("systemd-journald.service", timeout=30)
    m.require_unit_state("systemd-journald.service", "active")


@pytest.mark.herd(machines={"m": {}, "n": {}}, requires=["suid"])
def test_suid_and_capability_binaries_work_for_users(herd: Herd, m: Machine, n: Machine) -> None:
    herd.start_all()
    m.succeed("su -s /bin/sh nobody -c 'ping -c 1 -W 5 n'")
