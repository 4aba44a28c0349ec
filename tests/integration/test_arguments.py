"""Arguments no machine can take (a NUL byte in a command, a timeout of NaN, infinity or beyond a
week) are refused before anything is sent, and the machine goes on working."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from herd import ArgumentError, Test
from herd.hooks.types import BackendInfo, Capability
from herd.run.machine import Machine

UNUSABLE_TIMEOUTS = (float("nan"), float("inf"), 1e12, 0, -5)


def refused(pattern: str) -> AbstractContextManager[pytest.ExceptionInfo[ArgumentError]]:
    return pytest.raises(ArgumentError, match=pattern)


def test_a_nul_byte_in_a_command_is_refused_and_the_machine_keeps_working(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(a: Machine) -> None:
        nul = r"holds a NUL byte, which a command cannot"
        with refused(rf"^a: command 'echo a\\x00b' {nul}$"):
            a.execute("echo a\0b")
        with refused(nul):  # every command is checked before the first runs
            a.succeed("touch /root/first-ran", "echo \0")
        with refused(nul):
            a.fail("echo \0")
        with refused(nul):
            a.wait_until_succeeds("echo \0", timeout=5)
        with refused(nul):
            a.wait_until_fails("echo \0", timeout=5)
        with refused(nul):
            a.wait_for_file("/etc/\0", timeout=5)
        with refused(nul):
            a.succeed_with_input("cat \0", "input")
        with refused(nul):
            a.copy_from_machine("/etc/\0hostname")
        assert a.succeed("echo a b") == "a b\n"
        a.fail("test -e /root/first-ran")

    outcome = run_test(Test(name="nul", machines={"a": {}}, script=script))
    assert outcome.passed, outcome.error


def test_unusable_timeouts_are_refused_and_the_machine_keeps_working(
    run_test: Callable,  # type: ignore[type-arg]
    backend: BackendInfo,
) -> None:
    systemd = Capability.SYSTEMD in backend.capabilities

    def script(a: Machine, retry: Callable) -> None:  # type: ignore[type-arg]
        a.start()
        for seconds in UNUSABLE_TIMEOUTS:
            expected = (
                rf"^a: timeout: expected a positive number of seconds, at most 604800 .*, got {seconds!r}$"
            )
            with refused(expected):
                a.execute("true", timeout=seconds)
            with refused(expected):
                a.wait_until_succeeds("true", timeout=seconds)
            with refused(expected):
                a.wait_for_open_port(22, timeout=seconds)
            if systemd:
                with refused(expected):
                    a.wait_for_unit("multi-user.target", timeout=seconds)
            with refused(r"^retry: timeout: expected a positive number"):
                retry(lambda _last_try: True, timeout=seconds)
            with refused(expected):
                a.succeed("touch /root/ran", timeout=seconds)
            with refused(expected):
                a.fail("false", timeout=seconds)
            with refused(expected):
                a.succeed_with_input("cat > /root/ran", "x", timeout=seconds)
        a.fail("test -e /root/ran")
        assert a.execute("echo ok", timeout=604800) == (0, "ok\n")

    outcome = run_test(Test(name="timeouts", machines={"a": {}}, script=script))
    assert outcome.passed, outcome.error
