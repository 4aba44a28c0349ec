"""Machines with packages of their own over the host image, as VMs: the integration suite's test
(tests/integration/test_packages.py) on the `qemu` backend."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from tests.conftest import run_and_check
from tests.integration.test_packages import machines_with_packages_talk


def test_vms_with_different_packages_talk_to_each_other(apt_ready: None, tmp_path: Path) -> None:
    # Three VMs boot at once, emulated (TCG) where KVM fails: on a host of two cores each may take
    # minutes rather than seconds when other work shares the cores.
    run = partial(run_and_check, backend="qemu", output_dir=tmp_path / "out")
    machines_with_packages_talk(run, boot_timeout=300)
