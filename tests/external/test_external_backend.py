"""A backend shipped by a third party: herd-unshare, installed on its own into a fresh environment.

It is found by `herd plugins`, runs the ping example with `herd run --backend unshare`, and passes
the conformance kit for what it declares (it has no systemd: those cases are skipped). herd's core
knows nothing of it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_nothing_left

PACKAGE = Path(__file__).parent / "herd-unshare"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with herd's core and herd-unshare, and no other backend."""
    venv = tmp_path_factory.mktemp("external") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         str(ROOT), str(PACKAGE), "pytest"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield venv / "bin"


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def test_herd_plugins_finds_it(environment: Path) -> None:
    result = run([str(environment / "herd"), "plugins"])
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.split()[:1] == ["unshare"]]
    assert "loaded" in line and "(herd-unshare)" in line
    assert "nspawn" not in result.stdout


def test_herd_run_uses_it(environment: Path, tmp_path: Path) -> None:
    result = run(
        [str(environment / "herd"), "run", "examples/ping.py", "--backend", "unshare", "-o", str(tmp_path)]
    )
    assert result.returncode == 0, result.stderr
    assert "on unshare" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("PASS ping")
    assert_nothing_left(re.search(r"run ([a-z0-9]{5})", result.stderr).group(1))  # type: ignore[union-attr]


def test_it_passes_the_conformance_kit_for_what_it_declares(environment: Path, tmp_path: Path) -> None:
    result = run(
        [str(environment / "pytest"), "--pyargs", "herd.testing.conformance", "--herd-backend", "unshare",
         "-p", "no:cacheprovider", "-rs"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed, 10 skipped", summary), summary  # systemd 2, confined 5, limits 3
    for capability in ("systemd", "confined", "limits"):
        assert f"lacks the '{capability}' capability" in result.stdout
