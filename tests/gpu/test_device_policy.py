"""The nspawn backend's device policy on its own (root): a cgroup device program that allows the
pseudo-devices every container has and the granted nodes with the access granted, nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.hooks.types import DeviceNode
from herd.linux.cgroups import Cgroup
from herd_nspawn import devices

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loads cgroup device programs: needs root")

KMSG = DeviceNode("/dev/kmsg", "/dev/kmsg", "c", 1, 11, "r")


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    group = Cgroup(f"herd-test-{os.getpid()}")
    group.create()
    yield group
    group.kill()
    group.remove()
    assert not any(path.exists() for path in group.paths)


def inside(cgroup: Cgroup, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cgroup.command_in(["/bin/sh", "-c", command]), capture_output=True, text=True, check=False, timeout=30
    )


def test_this_host_can_set_a_device_policy() -> None:
    assert devices.unavailable() is None


def test_only_the_base_devices_and_the_grants_are_allowed(cgroup: Cgroup, tmp_path: Path) -> None:
    other = tmp_path / "fuse"  # numbers granted to nobody here
    os.mknod(other, 0o600 | stat.S_IFCHR, os.makedev(10, 229))
    devices.apply_policy("m", cgroup, [KMSG])
    base = "head -c 1 /dev/zero >/dev/null && echo x >/dev/null && head -c 1 /dev/urandom >/dev/null"
    assert inside(cgroup, base).returncode == 0
    assert inside(cgroup, "sh -c 'exec 3</dev/kmsg'").returncode == 0  # granted for reading
    for command in ("exec 3>/dev/kmsg", f"exec 3<{other}", f"mknod {tmp_path}/kmsg c 1 11"):
        denied = inside(cgroup, f"sh -c '{command}' 2>&1")
        assert denied.returncode != 0 and "Operation not permitted" in denied.stdout, (command, denied)
    made = inside(cgroup, f"mknod {tmp_path}/zero c 1 5 && head -c 1 {tmp_path}/zero | od -An -tx1")
    assert made.stdout.split() == ["00"], made
    outside = subprocess.run(["sh", "-c", f"exec 3<{other}"], capture_output=True, text=True, check=False)
    assert "Operation not permitted" not in outside.stderr  # the policy is the cgroup's alone
    for path in (other, tmp_path / "zero"):
        path.unlink()
        assert not path.exists()


def test_the_program_matches_rules_in_order() -> None:
    """Each rule is its tests then `return 1`; the program ends with `return 0`."""
    code = devices.program([devices.Rule("c", 1, None, "rw"), devices.Rule("b", None, None, "rwm")])
    prologue, rule_with_access, rule_any, epilogue = 6, 3 + 2 + 2, 1 + 2, 2
    assert len(code) == 8 * (prologue + rule_with_access + rule_any + epilogue)


@contextlib.contextmanager
def signals_to_this_thread(every: float) -> Iterator[None]:
    """SIGUSR1 to the calling thread every `every` seconds: each one that arrives while the kernel
    verifies a program makes it give up with EAGAIN, as signals do to a herd that boots under load."""
    target = threading.get_ident()
    stop = threading.Event()

    def send() -> None:
        while not stop.wait(every):
            signal.pthread_kill(target, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, lambda _number, _frame: None)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(every / 10)  # the sender gets the GIL on time, not after 5 ms
    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()
        sys.setswitchinterval(switch_interval)
        signal.signal(signal.SIGUSR1, previous)


def test_a_policy_is_set_while_signals_interrupt_the_verifier(cgroup: Cgroup) -> None:
    deadline = time.monotonic() + 1.5
    count = 0
    with signals_to_this_thread(0.002):
        while time.monotonic() < deadline:
            child = Cgroup(f"{cgroup.relative}/{count}")  # removed with the fixture's cgroup
            child.create()
            devices.apply_policy("m", child, [])
            count += 1
    assert count > 100
