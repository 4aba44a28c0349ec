"""What `herd doctor` checks for the nspawn backend, with the fix for each missing piece."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

from herd.plugin import HostCheck
from herd_nspawn import devices

# Id-mapped binds (":idmap", for the shared /usr of a machine in a user namespace) need systemd 250.
MINIMUM_SYSTEMD = 250


def _nspawn_version() -> int | None:
    try:
        output = subprocess.run(
            ["systemd-nspawn", "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return None
    match = re.search(r"systemd (\d+)", output)
    return int(match.group(1)) if match else None


def host_checks() -> Iterator[HostCheck]:
    path = shutil.which("systemd-nspawn")
    yield HostCheck(
        "systemd-nspawn",
        path is not None,
        path or "not found",
        None if path else "apt-get install systemd-container",
    )
    if path:
        version = _nspawn_version()
        yield HostCheck(
            "systemd version",
            version is not None and version >= MINIMUM_SYSTEMD,
            f"systemd {version}" if version else "unknown",
            None
            if version and version >= MINIMUM_SYSTEMD
            else f"systemd {MINIMUM_SYSTEMD} or newer is needed",
        )
    with open("/proc/filesystems") as filesystems:
        overlay = any(line.split()[-1] == "overlay" for line in filesystems if line.strip())
    yield HostCheck(
        "overlayfs",
        overlay,
        "available" if overlay else "the kernel does not offer overlayfs",
        None if overlay else "modprobe overlay",
    )
    problem = devices.unavailable()
    yield HostCheck(
        "device policy",
        problem is None,
        "containers open only the devices granted to them"
        if problem is None
        else f"{problem}: containers may open any host device",
        None if problem is None else "boot with cgroup2 mounted and a kernel with CONFIG_CGROUP_BPF",
    )
