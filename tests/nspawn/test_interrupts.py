"""Ctrl-C, SIGTERM and the test's timeout end a run cleanly and quickly, even while machines wait
for a boot slot; a halt that stalls is escalated."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from herd import Test, TestTimeout
from herd.linux.cgroups import machine_cgroup
from herd.run.fleet import BOOT_CONCURRENCY
from tests.conftest import ROOT, assert_nothing_left, start_herd_run

HERD = str(Path(sys.executable).with_name("herd"))
WAITING = """
import herd, time

def script(machine1, machine2, start_all):
    start_all()
    open({ready!r}, "w").close()
    time.sleep(120)

test = herd.Test(name="waiting", machines={{"machine1": {{}}, "machine2": {{}}}}, script=script)
"""


@pytest.mark.parametrize(("number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_tears_the_run_down_quickly(tmp_path: Path, number: signal.Signals, status: int) -> None:
    ready = tmp_path / "ready"
    test_file = tmp_path / "waiting.py"
    test_file.write_text(textwrap.dedent(WAITING.format(ready=str(ready))))
    process = subprocess.Popen(
        [HERD, "run", str(test_file), "--backend", "nspawn", "-o", str(tmp_path / "out")],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    signalled = time.monotonic()
    process.send_signal(number)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - signalled < 5
    assert process.returncode == status
    assert f"interrupted by {number.name}: stopping the machines" in stderr
    assert re.search(r"machine1 +powered off in", stderr) and re.search(r"machine2 +powered off in", stderr)
    assert f"INTERRUPTED waiting by {number.name}" in stderr.splitlines()[-1]
    assert_nothing_left(re.search(r"run ([a-z0-9]{5})", stderr).group(1))  # type: ignore[union-attr]


STALLING_UNIT = """[Service]
Type=simple
ExecStart=/bin/sleep infinity
ExecStop=/bin/sleep infinity
TimeoutStopSec=infinity
"""


def test_a_halt_that_stalls_is_escalated(tmp_path: Path) -> None:
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.wait_for_unit("stall.service")

    test = Test(name="stall", machines={"m": {"units": {"stall.service": STALLING_UNIT}}}, script=script)
    started = time.monotonic()
    outcome = test.run(backend="nspawn", output_dir=tmp_path / "out", terminal=None, stop_timeout=1.0)
    assert outcome.passed, outcome.error
    assert time.monotonic() - started < 10
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "m: did not power off within 1 s: terminated" in log
    assert_nothing_left(outcome.run_id)


MORE_MACHINES_THAN_BOOT_SLOTS = BOOT_CONCURRENCY + 2


def test_the_timeout_during_a_boot_with_machines_waiting_for_a_slot_ends_the_run(tmp_path: Path) -> None:
    machines: dict[str, dict[str, object]] = {f"m{i}": {} for i in range(MORE_MACHINES_THAN_BOOT_SLOTS)}
    test = Test(name="t", machines=machines, script="start_all()", timeout=0.3)
    started = time.monotonic()
    outcome = test.run(backend="nspawn", output_dir=tmp_path / "out", terminal=None)
    assert time.monotonic() - started < 15
    assert isinstance(outcome.error, TestTimeout) and "timeout of 0.3 s" in str(outcome.error)
    assert_nothing_left(outcome.run_id)


BOOTING = f"""
import herd

test = herd.Test(
    name="booting",
    machines={{f"m{{i}}": {{}} for i in range({MORE_MACHINES_THAN_BOOT_SLOTS})}},
    script="start_all()",
)
"""


def test_sigint_during_a_boot_with_machines_waiting_for_a_slot_ends_the_run(tmp_path: Path) -> None:
    test_file = tmp_path / "booting.py"
    test_file.write_text(BOOTING)
    process, run_id = start_herd_run(str(test_file), "--backend", "nspawn", "-o", str(tmp_path / "out"))
    deadline = time.monotonic() + 30
    while not any(cgroup.exists() for cgroup in machine_cgroup(run_id, "m0").paths):  # m0 is booting
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.005)
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - signalled < 10
    assert process.returncode == 130
    assert "INTERRUPTED booting by SIGINT" in stderr.splitlines()[-1]
    assert_nothing_left(run_id)
