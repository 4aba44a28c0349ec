"""The nixpkgs corpus boots real machines: it needs root, like tests/integration, and the services
its machines run installed on the host (tests/nixos/packages.txt, which `.ci/run` installs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PACKAGES = Path(__file__).with_name("packages.txt")


def missing_packages() -> list[str]:
    """The corpus's Debian packages that are not installed on this host."""
    wanted = PACKAGES.read_text().split()
    listing = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *wanted],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    installed = {line.split()[0] for line in listing.splitlines() if line.endswith(" installed")}
    return [name for name in wanted if name not in installed]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nixos_qemu: a corpus test that the qemu environment runs on VMs too")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    corpus = [item for item in items if "tests/nixos/" in str(item.path)]
    if not corpus:
        return
    if os.geteuid() != 0:
        reason = "boots real machines: needs root"
    elif missing := missing_packages():
        install = " ".join(missing)
        reason = f"the host lacks the corpus's services: apt-get install {install} (.ci/run installs them)"
    else:
        return
    for item in corpus:
        item.add_marker(pytest.mark.skip(reason=reason))
