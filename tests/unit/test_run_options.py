"""Run options are checked when they are made, before any run starts."""

from __future__ import annotations

import pytest

from herd import ArgumentError
from herd.run.driver import RunOptions


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 1e12, 0, -1])
def test_a_stop_timeout_is_a_positive_number_of_seconds_up_to_a_week(seconds: float) -> None:
    with pytest.raises(
        ArgumentError, match=r"^run option stop_timeout: expected a positive number of seconds"
    ):
        RunOptions(stop_timeout=seconds)
    assert RunOptions(stop_timeout=604800).stop_timeout == 604800
