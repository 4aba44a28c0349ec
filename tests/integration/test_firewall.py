"""Bridged traffic flows even when the host's FORWARD chain drops, as it does under Docker."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from herd.run.loader import load_tests
from herd_bridge.firewall import filtering_commands
from tests.conftest import ROOT


def test_ping_passes_a_forward_chain_that_drops(run_test: Callable) -> None:  # type: ignore[type-arg]
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    if "iptables" not in filtering_commands():
        pytest.skip("br_netfilter is not loaded: bridged frames do not pass iptables here")
    before = subprocess.run(
        ["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True
    ).stdout
    policy = before.splitlines()[0].split()[-1]
    subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], check=True)
    try:
        [test] = load_tests(ROOT / "examples" / "ping.py")
        outcome = run_test(test)
        after = subprocess.run(
            ["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run(["iptables", "-w", "-P", "FORWARD", policy], check=True)
    assert outcome.passed, outcome.error
    assert after == before.replace(f"-P FORWARD {policy}", "-P FORWARD DROP")
