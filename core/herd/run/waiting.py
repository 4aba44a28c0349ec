"""The wait loop under every wait of the script API: poll a condition until it holds or time is up.

The pause between two looks starts at a few milliseconds and grows, so a wait returns soon after its
condition holds without busying the host while it does not. The run's log gets the wait's start and
end, not each look (`RunLog.waiting`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from herd.errors import WaitTimeout

if TYPE_CHECKING:
    from herd.report.log import RunLog

T = TypeVar("T")
FIRST_POLL = 0.002  # seconds
LONGEST_POLL = 0.05


def poll(
    condition: Callable[[bool], T | None],
    timeout: float,
    what: str,
    machine: str | None = None,
    *,
    log: RunLog,
) -> T:
    """Call `condition(last_try)` until it returns something other than None or False.

    The pause between calls starts at 2 ms and grows to 50 ms. Raises `WaitTimeout` naming `what`
    once `timeout` seconds have passed; the last call gets `last_try=True`. The wait is one entry
    of `log`, the wait for `what` of `machine`.
    """
    with log.waiting(what, machine) as wait:
        deadline = time.monotonic() + timeout
        pause = FIRST_POLL
        while True:
            last_try = time.monotonic() + pause >= deadline
            wait.tries += 1
            result = condition(last_try)
            if result is not None and result is not False:
                return result
            if last_try:
                where = f"{machine}: " if machine else ""
                raise WaitTimeout(f"{where}timed out after {timeout:g} s waiting for {what}")
            time.sleep(pause)
            pause = min(pause * 1.5, LONGEST_POLL)
