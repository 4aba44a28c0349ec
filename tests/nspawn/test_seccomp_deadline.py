"""Reading a process's system-call filters gives up in time when the process cannot stop, and the
process is let go once it can (root: the v1 freezer, whose frozen tasks stop for nothing)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from herd.errors import HerdError
from herd.linux import seccomp

FREEZER = Path("/sys/fs/cgroup/freezer")


def _tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("TracerPid:"))


def test_a_frozen_process_fails_the_read_in_time_and_is_let_go_once_thawed() -> None:
    if not FREEZER.is_dir():
        pytest.skip("no v1 freezer hierarchy here (its frozen tasks cannot stop for a tracer)")
    cgroup = FREEZER / f"herd-test-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (cgroup / "cgroup.procs").write_text(str(sleeper.pid))
        (cgroup / "freezer.state").write_text("FROZEN")
        started = time.monotonic()
        with pytest.raises(HerdError, match=r"did not stop within 0\.5 s"):
            seccomp.filters_of(sleeper.pid, timeout=0.5)
        assert time.monotonic() - started < 2.0
        (cgroup / "freezer.state").write_text("THAWED")
        deadline = time.monotonic() + 5.0
        while _tracer_of(sleeper.pid) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _tracer_of(sleeper.pid) == 0, "the process stayed traced after it thawed"
        assert sleeper.poll() is None, "the process did not go on running"
    finally:
        (cgroup / "freezer.state").write_text("THAWED")
        sleeper.kill()
        sleeper.wait()
        cgroup.rmdir()
    assert not cgroup.exists()
