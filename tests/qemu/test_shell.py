"""`herd shell`, `herd list` and `shell_interact` on QEMU VMs: the sessions go through the agent on
the VM's virtio port (the same checks as tests/integration/test_shell.py, on the qemu backend)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_shell import drive_a_kept_run, drive_shell_interact


def test_herd_shell_and_herd_list_reach_a_kept_vm(tmp_path: Path) -> None:
    drive_a_kept_run("qemu", tmp_path)


def test_shell_interact_gives_the_terminal_to_a_vm(tmp_path: Path) -> None:
    drive_shell_interact("qemu", tmp_path)
