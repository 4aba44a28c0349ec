"""A `Driver` is a context manager: entering opens the run, leaving tears it down, whatever
happened in the block."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd import Test
from herd.hooks.types import BackendInfo
from herd.run.driver import Driver, RunOptions
from tests.conftest import assert_nothing_left

MACHINES = {"a": {}, "b": {}}


def driver_of(backend: BackendInfo, output_dir: Path) -> Driver:
    test = Test(name="lifecycle", machines=MACHINES, script="pass")
    return Driver(
        test.spec, test.source, RunOptions(backend=backend.name, output_dir=output_dir, terminal=None)
    )


def test_a_block_that_ends_passes_and_leaves_nothing(backend: BackendInfo, tmp_path: Path) -> None:
    with driver_of(backend, tmp_path) as driver:
        assert driver.run_dir is not None and driver.outcome is not None
        a, b = driver.machines
        driver.start_all()
        assert a.succeed("hostname").strip() == "a" and b.is_up()
    assert driver.outcome.passed and driver.outcome.error is None and driver.run_dir is None
    assert not a.is_up() and not b.is_up()
    assert f"PASS lifecycle in {driver.outcome.seconds:.2f} s" in (tmp_path / "log.txt").read_text()
    assert_nothing_left(driver.run_id)


def test_a_block_that_raises_fails_and_is_torn_down(backend: BackendInfo, tmp_path: Path) -> None:
    driver = driver_of(backend, tmp_path)
    with pytest.raises(RuntimeError, match="the block failed"), driver:
        driver.machines[0].succeed("true")
        raise RuntimeError("the block failed")
    assert driver.outcome is not None and not driver.outcome.passed
    assert isinstance(driver.outcome.error, RuntimeError)
    assert not driver.machines[0].is_up() and driver.run_dir is None
    assert "FAIL lifecycle" in (tmp_path / "log.txt").read_text()
    assert_nothing_left(driver.run_id)
