"""Signals during a run: SIGINT and SIGTERM end the script (`Interrupted`), the test's timeout
raises `TestTimeout` in it, and teardown, which is bounded, runs with both ignored.

Python delivers signals to the main thread only, so each of these does nothing in another thread
(a run driven from a worker thread keeps the process's own handling).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from herd.errors import TestTimeout


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the run stops, and teardown still runs."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_interrupt(
    timeout: float | None, numbers: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """In the main thread: the signals `numbers` (SIGINT and SIGTERM) raise `Interrupted`, and the
    global timeout `TestTimeout`."""
    if not _in_main_thread():
        yield
        return

    def interrupt(number: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(number).name)

    previous = {number: signal.signal(number, interrupt) for number in numbers}
    try:
        with global_timeout(timeout):
            yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def global_timeout(timeout: float | None) -> Iterator[None]:
    """In the main thread: raise `TestTimeout` in it once `timeout` seconds have passed."""
    if timeout is None or not _in_main_thread():
        yield
        return

    def expire(_number: int, _frame: object) -> None:
        raise TestTimeout(f"the test ran past its timeout of {timeout:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """In the main thread: SIGINT and SIGTERM are ignored while teardown, which is bounded, runs."""
    if not _in_main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
