"""The seed's example through the command line: two machines ping each other by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT, assert_nothing_left


def test_herd_run_ping_passes_and_leaves_nothing(herd_cli: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    result = herd_cli("run", str(ROOT / "examples" / "ping.py"), "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("PASS ping in ")
    run_id = re.search(r"run ([a-z0-9]{5})", lines[0]).group(1)  # type: ignore[union-attr]
    assert_nothing_left(run_id)
    log = (tmp_path / "log.txt").read_text()
    assert "machine1: $ ping -c 1 machine2  -> exit 0" in log
    assert "1 packets transmitted, 1 received" in log
    assert (tmp_path / "machine1" / "console.log").exists()
