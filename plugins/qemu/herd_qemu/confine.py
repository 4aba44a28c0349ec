"""What keeps root in a VM from being root on the host through the files it writes.

A VM's own processes are not the host's: its kernel, its sysctls and its mounts are its own. What
it writes reaches the host through virtiofsd, which runs as host root and makes each file as the
guest asks: a file that the guest's root makes is host root's, with the mode bits, file
capabilities and device numbers the guest gives it. Left as they are, a set-user-id root shell or a
block device node that the guest made would be on the host for any user there to use. So:

- the file server may not make device nodes: its CAP_MKNOD is dropped (`FILE_SERVER_CAPABILITIES`;
  for libvirt, which has no setting for it, through a wrapper of herd's). The guest's devices are
  on its own devtmpfs, never on its root, and FIFOs and sockets need no capability;
- the machine's state directory, which holds its root and writable layers, is root's alone (mode
  0700), and the file system there ignores set-user-id bits and file capabilities (the core mounts
  it nosuid), so what the guest made there is neither reachable by the host's other users nor
  runnable with privileges by root;
- a host directory that the core binds into the machine (its journal, in the run's output) is
  served from a twin in the state directory instead. While the VM runs, the host directory is a
  link to the twin (so `journalctl --directory` reads the journal live, as root); once QEMU has
  ended, the twin's regular files are copied there as plain files of herd's, and nothing else:
  no links, no devices, no set-user-id bits, no file capabilities. A run killed with SIGKILL keeps
  no journal (the link is left dangling).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from herd.plugin import LaunchPlan
from herd_qemu.kernel import CACHE

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"  # QEMU's own, in qemu-system-common
FILE_SERVER_CAPABILITIES = "modcaps=-mknod"  # a virtiofsd option
# The file server libvirt runs: QEMU's virtiofsd, without CAP_MKNOD.
LIBVIRT_FILE_SERVER = CACHE.parent / "virtiofsd"
LIBVIRT_FILE_SERVER_SCRIPT = f'#!/bin/sh\nexec {VIRTIOFSD} "$@" -o {FILE_SERVER_CAPABILITIES}\n'
TWINS = "binds"  # under the state directory


def _twin(plan: LaunchPlan, number: int) -> Path:
    return plan.state_dir / TWINS / str(number)


def served_binds(plan: LaunchPlan) -> tuple[tuple[str, str], ...]:
    """`plan.root.binds` as the file server serves them: each host directory's twin in its place."""
    return tuple((str(_twin(plan, number)), guest) for number, (_, guest) in enumerate(plan.root.binds))


def prepare(plan: LaunchPlan) -> None:
    """Before each boot: make the state directory root's alone, and each bound host directory a
    link to its twin (made at the first boot from what the directory held)."""
    plan.state_dir.chmod(0o700)
    for number, (host, _) in enumerate(plan.root.binds):
        twin, target = _twin(plan, number), Path(host)
        if not twin.exists():
            twin.parent.mkdir(exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                _copy_plain(target, twin)
            else:
                twin.mkdir()
        _remove(target)
        target.symlink_to(twin)


def keep(plan: LaunchPlan) -> None:
    """Once QEMU has ended: the bound host directories get their twins' regular files."""
    for number, (host, _) in enumerate(plan.root.binds):
        twin, target = _twin(plan, number), Path(host)
        if twin.is_dir() and target.is_symlink():
            target.unlink()
            _copy_plain(twin, target)


def libvirt_file_server() -> Path:
    """The file server for libvirt's `<binary path=...>`, written once into herd's cache."""
    if not LIBVIRT_FILE_SERVER.is_file() or LIBVIRT_FILE_SERVER.read_text() != LIBVIRT_FILE_SERVER_SCRIPT:
        LIBVIRT_FILE_SERVER.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=LIBVIRT_FILE_SERVER.parent, delete=False) as scratch:
            scratch.write(LIBVIRT_FILE_SERVER_SCRIPT)
        os.chmod(scratch.name, 0o755)
        os.replace(scratch.name, LIBVIRT_FILE_SERVER)
    return LIBVIRT_FILE_SERVER


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _copy_plain(source: Path, target: Path) -> None:
    """Directories and the content of regular files from `source` to a new `target`, in modes of
    herd's choosing; whatever else is there (links, devices, FIFOs, sockets) is left out."""
    target.mkdir()
    for directory, _, names in os.walk(source):
        made = target / Path(directory).relative_to(source)
        made.mkdir(exist_ok=True)
        for name in names:
            if stat.S_ISREG(os.lstat(Path(directory, name)).st_mode):
                shutil.copyfile(Path(directory, name), made / name)
