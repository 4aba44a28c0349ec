"""Scale and endurance: 100 containers in one test, and the ping example run many times in a row."""

from __future__ import annotations

import subprocess
from pathlib import Path

from herd import Test
from herd.limits import INOTIFY_INSTANCES
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
