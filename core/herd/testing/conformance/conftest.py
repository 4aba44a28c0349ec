"""The conformance kit's own check: after every case, nothing of its run is left on the host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from herd.host.residue import leftovers
from herd.testing.pytest_plugin import DRIVER_KEY


@pytest.fixture(autouse=True)
def _nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Set up before `herd`, torn down after it: checks the run left nothing on the host."""
    yield
    driver = request.node.stash.get(DRIVER_KEY, None)
    if driver is None or not driver.run_id or driver.run_dir is not None:
        return  # no run, or one that --herd-keep keeps up until the session ends
    left = leftovers(driver.run_id, driver.plugins)
    assert not left, f"the run {driver.run_id} left: {left}"
