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
from herd.cgroups import hierarchies
from herd.driver import Outcome
from herd.links import link_names
from herd.network import LINK_PREFIX
from herd.rundir import state_root

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


def leftovers(run_id: str) -> list[str]:
    """Everything of run `run_id` that still exists on the host."""
    found = [f"link {name}" for name in link_names(f"{LINK_PREFIX}{run_id}")]
    state = state_root() / run_id
    if state.exists():
        found.append(f"state directory {state}")
    found += [
        f"cgroup {root / 'herd' / run_id}" for root in hierarchies() if (root / "herd" / run_id).exists()
    ]
    with open("/proc/self/mountinfo") as mountinfo:
        found += [f"mount {line.split()[4]}" for line in mountinfo if str(state) in line]
    for command in ("iptables", "ip6tables"):
        if shutil.which(command):
            rules = subprocess.run([command, "-w", "-S"], capture_output=True, text=True, check=False).stdout
            found += [f"{command} rule {rule}" for rule in rules.splitlines() if f"herd:{run_id}" in rule]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if str(state).encode() in cmdline.read():
                    found.append(f"process {pid}")
        except OSError:
            continue
    return found


def assert_nothing_left(run_id: str) -> None:
    left = leftovers(run_id)
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
