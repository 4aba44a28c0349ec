"""A machine's limits: what it meets when it goes past its processes, memory and writable layer,
while the other machine of the test, and the host, go on unaffected. For backends that declare the
`limits` capability (every `confined` one does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytest_plugin import Herd


LIMITS = ["limits"]
# Forks children that sleep until it meets the limit, then kills them all and says why it stopped.
# Not a shell loop of `sleep 5 &`: how many such sleeps live at once depends on how fast the
# machine forks (a TCG VM forks slowly enough that the first had ended before the 128th began),
# and bash retries a failed fork for fifteen seconds.
FORK_BOMB = """python3 -c '
import os, signal, time
children = []
try:
    while len(children) < 1000:
        child = os.fork()
        if child == 0:
            time.sleep(300)
            os._exit(0)
        children.append(child)
except OSError as error:
    print("fork:", error.strerror)
for child in children:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
raise SystemExit(len(children) < 1000)
'"""
MEMORY_HOG = "python3 -c 'b = bytearray(300 << 20)'"


@pytest.mark.herd(machines={"bomb": {"pids": 128}, "calm": {}}, requires=LIMITS)
def test_a_fork_bomb_meets_the_machines_pids(herd: Herd, bomb: Machine, calm: Machine) -> None:
    herd.start_all()
    output = bomb.fail(FORK_BOMB)
    assert output.startswith("fork: "), output  # it met the limit, not its thousand
    assert calm.succeed("echo still here") == "still here\n"
    assert int(calm.succeed("ps -e --no-headers | wc -l")) < 128
    assert bomb.succeed("echo recovered") == "recovered\n"  # its children are gone


@pytest.mark.herd(machines={"small": {"memory": 128}, "other": {}}, requires=LIMITS)
def test_a_memory_hog_is_killed_at_the_machines_memory(herd: Herd, small: Machine, other: Machine) -> None:
    herd.start_all()
    status, _ = small.execute(MEMORY_HOG)
    assert status == 137, f"the hog ended with status {status}, not by SIGKILL"
    small.wait_until_succeeds("true", timeout=30)
    other.succeed(MEMORY_HOG)  # 300 MiB fit in the default 1024


@pytest.mark.herd(machines={"full": {"disk": 64}, "other": {}}, requires=LIMITS)
def test_a_disk_filler_meets_the_machines_writable_layer(herd: Herd, full: Machine, other: Machine) -> None:
    # Written a MiB at a time: `head -c` writes 8 KiB at a time, each a round trip to the host's
    # file server on a VM, where 100 MiB took seventeen seconds rather than one.
    herd.start_all()
    for path in ("/var/fill", "/srv/fill", "/etc/fill"):
        output = full.fail(f"dd if=/dev/zero of={path} bs=1M count=100 2>&1")
        assert "No space left on device" in output, output
        full.succeed(f"rm -f {path}")
    full.succeed("dd if=/dev/zero of=/var/fits bs=1M count=16 status=none && rm /var/fits")
    other.succeed("dd if=/dev/zero of=/var/fill bs=1M count=100 status=none && rm /var/fill")
