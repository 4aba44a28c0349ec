"""Command execution: exact output and status, binary data, large output, timeouts, background jobs.

The cases share one machine, booted once for the module: none leaves behind what another would
meet (each ends the processes it starts), and on a VM without KVM a boot is seconds."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import TYPE_CHECKING

import pytest

from herd import CommandFailed, WaitTimeout
from herd.testing.fixtures import machines

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytestrun import Herd


@machines({"m": {}}, scope="module")
def shared(run: Herd) -> None:
    """The module's machine, started before its first case."""
    run.start_all()


@pytest.fixture
def m(shared: Herd) -> Machine:
    return shared.m


def test_stdout_stderr_and_status(m: Machine) -> None:
    assert m.execute("printf 'out\\n'; printf 'err' >&2; exit 3") == (3, "out\n")
    assert m.succeed("echo a", "echo b") == "a\nb\n"
    with pytest.raises(
        CommandFailed, match=r"failed \(exit status 1\); its standard error ends with:\n    oops"
    ):
        m.succeed("echo oops >&2; false")
    assert m.fail("exit 2") == ""
    with pytest.raises(CommandFailed, match="unexpectedly succeeded"):
        m.fail("true")
    assert m.execute("kill -TERM $$")[0] == 128 + 15


def test_binary_and_large_data(m: Machine) -> None:
    payload = os.urandom(4_000_000)
    digest = m.succeed_with_input("sha256sum | cut -c1-64", payload).strip()
    assert digest == hashlib.sha256(payload).hexdigest()
    assert len(m.succeed("head -c 25000000 /dev/zero | tr '\\0' x")) == 25_000_000
    every_byte = bytes(range(256)).decode("latin-1")
    assert m.succeed_with_input("cat", every_byte.encode("latin-1")) == every_byte.encode("latin-1").decode(
        errors="replace"
    )


def test_background_processes_do_not_hang_the_call(m: Machine) -> None:
    started = time.monotonic()
    m.succeed("sleep 301 &")
    m.succeed("sleep 301 >/dev/null 2>&1 &")
    assert time.monotonic() - started < 5
    # Both sleeps run (a background job may exec only after its shell ended); the machine's own
    # sleeps do not count.
    m.wait_until_succeeds("test $(pgrep -f '^sleep 301$' | wc -l) -eq 2", timeout=10)
    m.succeed("pkill -f '^sleep 301$'")


def test_a_command_past_its_timeout_is_killed_with_its_children(m: Machine) -> None:
    started = time.monotonic()
    assert m.execute("echo begun; sh -c 'sleep 201' & sleep 101", timeout=0.5) == (124, "begun\n")
    assert time.monotonic() - started < 5
    m.wait_until_fails("pgrep -f '^sleep (101|201)$'", timeout=10)
    with pytest.raises(WaitTimeout, match=r"did not finish within 0\.5 s"):
        m.succeed("sleep 102", timeout=0.5)


def test_commands_run_concurrently(m: Machine) -> None:
    outputs: list[str] = []
    threads = [
        threading.Thread(target=lambda n=n: outputs.append(m.succeed(f"sleep 0.5; echo {n}")))
        for n in range(6)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outputs) == [f"{n}\n" for n in range(6)]
    assert time.monotonic() - started < 3


def test_waits_return_soon_after_their_condition_holds(m: Machine) -> None:
    m.succeed("(sleep 0.3; touch /srv/flag) >/dev/null 2>&1 &")
    started = time.monotonic()
    m.wait_for_file("/srv/flag", timeout=10)
    assert time.monotonic() - started < 1.5
    assert m.wait_until_succeeds("cat /srv/flag; echo seen", timeout=5) == "seen\n"
    with pytest.raises(WaitTimeout, match=r"m: timed out after 0\.3 s waiting for file /nope to exist"):
        m.wait_for_file("/nope", timeout=0.3)


def test_commands_hold_no_capability_the_machines_init_lacks(m: Machine) -> None:
    def bound(status: str) -> int:
        [line] = [line for line in status.splitlines() if line.startswith("CapBnd:")]
        return int(line.split()[1], 16)

    commands = bound(m.succeed("cat /proc/self/status"))
    init = bound(m.succeed("cat /proc/1/status"))
    assert commands & ~init == 0, f"commands may use {commands & ~init:#x}, which init may not"
