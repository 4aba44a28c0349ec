"""Boot and readiness: a machine is ready for commands as soon as it has started."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytest_plugin import Herd


@pytest.mark.herd(machines={"solo": {}})
def test_a_started_machine_runs_commands_at_once(herd: Herd, solo: Machine) -> None:
    assert not solo.is_up()
    solo.start()
    assert solo.is_up()
    assert solo.succeed("echo ready") == "ready\n"
    assert solo.succeed("hostname").strip() == "solo"
    solo.start()  # starting a running machine does nothing
    assert solo.is_up()


@pytest.mark.herd(machines={"lazy": {}})
def test_the_first_command_boots_the_machine(lazy: Machine) -> None:
    assert lazy.succeed("echo booted") == "booted\n"
    assert lazy.is_up()


# Three: more than a pair, and few enough for VMs under TCG on two cores, where four took most of a
# minute to boot at once, near the default boot timeout.
@pytest.mark.herd(machines={f"m{i}": {} for i in range(3)})
def test_machines_boot_together(herd: Herd) -> None:
    started = time.monotonic()
    herd.start_all()
    assert all(m.is_up() for m in herd.machines.values())
    names = {m.succeed("hostname").strip() for m in herd.machines.values()}
    assert names == {"m0", "m1", "m2"}
    herd.log(f"3 machines booted in {time.monotonic() - started:.2f} s")
