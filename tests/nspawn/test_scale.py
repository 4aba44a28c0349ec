"""Scale and endurance: 100 containers in one test, and the ping example run many times in a row."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from pathlib import Path

from herd import Test
from herd.host.limits import INOTIFY_INSTANCES, QUOTA_LOCK, ensure_inotify_instances
from tests.conftest import ROOT, assert_nothing_left


def test_a_hundred_machines_all_ping_one_of_them(tmp_path: Path) -> None:
    def script(machines, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        for machine in machines[1:]:
            machine.succeed("ping -c 1 -W 5 m0")

    test = Test(name="hundred", machines={f"m{i}": {} for i in range(100)}, script=script)
    outcome = test.run(backend="nspawn", output_dir=tmp_path / "out", terminal=None)
    assert outcome.passed, outcome.error
    assert_nothing_left(outcome.run_id)
    assert int(INOTIFY_INSTANCES.read_text()) >= 800  # raised if it was short


def test_a_short_soak_leaves_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "bench" / "soak"), "-n", "30"], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "30 runs: 0 failed, 0 leaked, 0 stray runs" in result.stdout


def test_runs_count_and_raise_the_inotify_quota_one_at_a_time() -> None:
    """A run that read the limit while another raised it could write back a lower one: each run
    counts, compares and writes while it holds the host's quota lock."""
    descriptor = os.open(QUOTA_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # another run, counting
    checking = threading.Thread(target=ensure_inotify_instances, args=(1,))
    checking.start()
    checking.join(0.3)
    assert checking.is_alive(), "the quota was read while another run held the lock"
    os.close(descriptor)
    checking.join(10)
    assert not checking.is_alive()
