"""Shutdown and crash: a machine stops as asked and boots again on the same state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytest_plugin import Herd


@pytest.mark.herd(machines={"m": {}})
def test_shutdown_then_start_again_keeps_the_state(m: Machine) -> None:
    m.succeed("echo kept > /srv/state")
    m.shutdown()
    assert not m.is_up()
    m.start()
    assert m.succeed("cat /srv/state") == "kept\n"


@pytest.mark.herd(machines={"m": {}})
def test_crash_then_boot_on_first_use(m: Machine) -> None:
    m.succeed("echo kept > /srv/state; sync")
    m.crash()
    assert not m.is_up()
    assert m.succeed("cat /srv/state") == "kept\n"
    assert m.is_up()


@pytest.mark.herd(machines={"m": {}, "n": {}})
def test_one_machine_stops_while_the_other_runs(herd: Herd, m: Machine, n: Machine) -> None:
    herd.start_all()
    m.shutdown()
    assert n.succeed("echo still here") == "still here\n"
    assert not m.is_up() and n.is_up()
