"""Every file in examples/ runs and passes, so the examples stay true (those that name backends run
where those are installed: examples/mixed.py in the qemu environment, by tests/qemu)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.hooks.manager import Plugins
from herd.hooks.types import Capability
from herd.run.loader import load_tests
from tests.conftest import ROOT, assert_nothing_left

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_passes(example: Path, tmp_path: Path, herd_cli: Callable, require: Callable) -> None:  # type: ignore[type-arg]
    named = {m.backend for t in load_tests(example) for m in t.spec.machines if m.backend}
    if missing := named - set(Plugins().load_all().backends):
        pytest.skip(f"names backends not installed here: {', '.join(sorted(missing))}")
    if any(m.units or m.services for t in load_tests(example) for m in t.spec.machines):
        require(Capability.SYSTEMD)
    result = herd_cli("run", str(example), "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("PASS ")
    for run_id in re.findall(r"· run ([a-z0-9]{5})", result.stderr):
        assert_nothing_left(run_id)
