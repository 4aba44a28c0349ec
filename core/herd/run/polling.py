"""Polling conditions: checks that must keep holding while a part of the script runs.

    @polling_condition(seconds_interval=5, description="nginx runs")
    def nginx_runs():
        server.succeed("pgrep -x nginx")

    with nginx_runs:
        client.succeed("curl -sf http://server")   # each command first checks the condition

A condition holds when its function returns anything but False and raises nothing. While a
condition is entered, the driver checks it before every command a machine runs, at most once per
`seconds_interval`; a check that fails raises `PollingConditionFailed` in place of the command, which
fails the test. The function's own commands do not check it again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from herd.declare.spec import timeout_problem
from herd.errors import ArgumentError, PollingConditionFailed
from herd.run.waiting import poll

if TYPE_CHECKING:
    from herd.report.log import RunLog

DEFAULT_INTERVAL = 2.0  # seconds between two checks, as in the NixOS test driver


class PollingCondition:
    """A condition function, entered with `with` to be checked between the script's commands.

    Example::

        with polling_condition(lambda: server.succeed("pgrep -x nginx")):
            client.succeed("curl -sf http://server")
    """

    def __init__(
        self,
        function: Callable[[], Any],
        active: list[PollingCondition],
        log: RunLog,
        seconds_interval: float = DEFAULT_INTERVAL,
        description: str | None = None,
    ) -> None:
        if (
            isinstance(seconds_interval, bool)
            or not isinstance(seconds_interval, int | float)
            or not 0 <= seconds_interval < math.inf
        ):
            raise ArgumentError(
                f"polling_condition: seconds_interval must be a number of seconds >= 0, "
                f"got {seconds_interval!r}"
            )
        self.function = function
        self.seconds_interval = float(seconds_interval)
        self.description = description or _describe(function)
        self._active = active
        self._log = log
        self._running = False  # the function runs now: its own commands do not check it again
        self._last_checked = -math.inf

    def __repr__(self) -> str:
        return f"<polling condition {self.description!r}>"

    def __enter__(self) -> PollingCondition:
        self._active.append(self)
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._active.remove(self)

    def _due(self) -> bool:
        return not self._running and time.monotonic() - self._last_checked >= self.seconds_interval

    def check(self, force: bool = False) -> str | None:
        """Run the function now (when due, or whatever the time when `force`); return None when the
        condition holds, else why it does not."""
        if not force and not self._due():
            return None
        self._running = True
        try:
            result = self.function()
            failure = "it returned False" if result is False else None
        except Exception as error:
            failure = f"{type(error).__name__}: {error}"
        finally:
            self._running = False
            self._last_checked = time.monotonic()
        state = "holds" if failure is None else f"does not hold: {failure}"
        self._log.info(f"polling condition {self.description!r} {state}", show=False)
        return failure

    def raise_if_broken(self) -> None:
        """Check the condition when it is due; raise `PollingConditionFailed` when it does not hold."""
        failure = self.check()
        if failure is not None:
            raise PollingConditionFailed(f"polling condition {self.description!r} failed: {failure}")

    def wait(self, timeout: float = 900.0) -> None:
        """Wait until the condition holds, checking it again and again; fail after `timeout` s.

        Example::

            nginx_runs.wait(timeout=30)
        """
        if (problem := timeout_problem(timeout)) is not None:
            raise ArgumentError(f"polling condition {self.description!r}: wait: timeout: {problem}")
        poll(
            lambda _last_try: self.check(force=True) is None,
            timeout,
            f"{self.description!r} to hold",
            log=self._log,
        )


def _describe(function: Callable[[], Any]) -> str:
    """The condition's name in the log: the first line of its docstring, else its function's name."""
    doc = (function.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else getattr(function, "__name__", "condition")


def check_all(active: list[PollingCondition]) -> None:
    """Check every entered condition that is due (before a command runs)."""
    for condition in list(active):
        condition.raise_if_broken()
