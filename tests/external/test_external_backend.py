"""A backend shipped by a third party: herd-unshare, installed on its own into a fresh environment.

It is found by `herd plugins`, runs the ping example with `herd run --backend unshare`, and passes
the conformance kit for what it declares (it has no systemd: those cases are skipped). herd's core
knows nothing of it. Its machines' networks are herd-bridge's, a plugin too: before it is installed,
`herd run` says in one line what to install, and starts nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_nothing_left

PACKAGE = Path(__file__).parent / "herd-unshare"
BRIDGE = ROOT / "plugins" / "bridge"


@dataclass(frozen=True)
class Environment:
    bin: Path  # its commands
    without_networks: subprocess.CompletedProcess[str]  # `herd run` before herd-bridge was installed


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def install(venv: Path, *packages: str) -> None:
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *packages], check=True, capture_output=True)


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """A new virtual environment with herd's core, herd-unshare and herd-bridge, and no other
    backend; `herd run` was tried in it before herd-bridge was installed."""
    venv = tmp_path_factory.mktemp("external") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install(venv, str(ROOT), str(PACKAGE), "pytest")
    output = tmp_path_factory.mktemp("without-networks")
    without = run(
        [str(venv / "bin" / "herd"), "run", "examples/ping.py", "--backend", "unshare", "-o", str(output)]
    )
    install(venv, str(BRIDGE))
    yield Environment(venv / "bin", without)


def test_without_a_network_provider_herd_run_says_what_to_install(environment: Environment) -> None:
    result = environment.without_networks
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "herd: test 'ping', network 'default': no network provider named 'bridge' is installed (installed: "
        "none); network providers ship as Python packages, by convention 'pip install herd-bridge'"
    ]


def test_herd_plugins_finds_it(environment: Environment) -> None:
    result = run([str(environment.bin / "herd"), "plugins"])
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.split()[:1] == ["unshare"]]
    assert "loaded" in line and "(herd-unshare)" in line
    assert "nspawn" not in result.stdout


def test_herd_run_uses_it(environment: Environment, tmp_path: Path) -> None:
    result = run(
        [
            str(environment.bin / "herd"),
            "run",
            "examples/ping.py",
            "--backend",
            "unshare",
            "-o",
            str(tmp_path),
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "on unshare" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("PASS ping")
    assert_nothing_left(re.search(r"run ([a-z0-9]{5})", result.stderr).group(1))  # type: ignore[union-attr]


def test_it_passes_the_conformance_kit_for_what_it_declares(environment: Environment, tmp_path: Path) -> None:
    result = run(
        [str(environment.bin / "pytest"), "--pyargs", "herd.testing.conformance", "--herd-backend", "unshare",
         "-p", "no:cacheprovider", "-rs"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
    summary = result.stdout.strip().splitlines()[-1]
    # systemd 2, confined 5, limits 3, shell 2, and the 4 image kinds other than host, which it does
    # not boot
    assert re.search(r"\d+ passed, 16 skipped", summary), summary
    for capability in ("systemd", "confined", "limits", "shell"):
        assert f"lacks the '{capability}' capability" in result.stdout
    assert result.stdout.count("backend 'unshare' does not boot images of kind") == 4
