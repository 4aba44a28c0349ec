"""The nixpkgs corpus boots real machines: it needs root, like tests/integration."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nixos_qemu: a corpus test that the qemu environment runs on VMs too")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="boots real machines: needs root")
    for item in items:
        if "tests/nixos/" in str(item.path):
            item.add_marker(skip)
