"""Integration tests boot real machines: they need root and systemd-nspawn.

Every test checks that its runs left nothing behind: `assert_nothing_left(run_id)` looks for the
run's links, cgroups, state directory, mounts, firewall rules and processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from herd import Test
from herd.driver import Outcome
from herd.plugins import Plugins
from herd.residue import leftovers

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "integration tests boot real machines and need root"
    elif shutil.which("systemd-nspawn") is None:
        reason = "systemd-nspawn is missing: apt-get install systemd-container"
    for item in items:
        if "integration" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def assert_nothing_left(run_id: str) -> None:
    left = leftovers(run_id, Plugins())
    assert not left, f"run {run_id} left: {left}"


def run(test: Test, tmp_path: Path, **options: Any) -> Outcome:
    """Run a test quietly with its output under tmp_path; check that it left nothing behind."""
    outcome = test.run(output_dir=tmp_path / "out", terminal=None, **options)
    assert_nothing_left(outcome.run_id)
    return outcome


def herd_cli(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    herd = Path(sys.executable).with_name("herd")
    return subprocess.run(
        [str(herd), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )
