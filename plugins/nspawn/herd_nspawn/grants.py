"""Device grants applied to a container: nodes and mounts bound in (their environment is the core's
`hostimage.apply_grant_environment`).

Several containers may bind the same host node at once: nothing here takes a device for one
container alone. Which nodes a container may open is its device policy (`herd_nspawn.devices`).

A container's root is not host root: each granted node is bound from its twin in the machine's
state directory (`herd.host.idmap.twin_nodes`), which the machine's users may open as the host's users
open the node itself. A
read-only granted mount (a driver's libraries) is bound id-mapped where its file system allows it,
so that host root's files are the machine root's, SUID bits and file capabilities included. A
writable one is bound as it is: what the machine writes there is owned by its unprivileged host
ids, never host root's (an id-mapped writable mount would let it leave a SUID-root program on the
host), and it writes only where the mode lets anyone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from herd.plugin import DeviceGrant, twin_nodes


def escaped(path: str) -> str:
    """A path as systemd-nspawn's --bind takes it: backslash escapes, so `\\:` for a colon."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


# File systems that take id-mapped mounts on the kernels herd runs on (tmpfs since Linux 6.3).
IDMAPPABLE = frozenset({"ext4", "xfs", "btrfs", "tmpfs"})


def file_system_type(path: str) -> str:
    """The type of the file system `path` is on, from the mount table."""
    device = os.stat(path).st_dev
    numbers = f"{os.major(device)}:{os.minor(device)}"
    found = "unknown"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if fields[2] == numbers:
                found = fields[fields.index("-") + 1]
    return found


def bind_arguments(grants: Iterable[DeviceGrant], twins: Path, shift: int) -> list[str]:
    """systemd-nspawn arguments that bind the grants' nodes (through their twins in `twins`) and
    mounts into the container."""
    grants = tuple(grants)
    binds = {}
    for node, twin in twin_nodes(grants, twins, shift):
        binds[node.guest_path] = f"--bind={escaped(str(twin))}:{escaped(node.guest_path)}"
    for grant in grants:
        for host, guest, read_only in grant.mounts:
            option = "--bind-ro" if read_only else "--bind"
            mapping = ":idmap" if read_only and file_system_type(host) in IDMAPPABLE else ""
            binds.setdefault(guest, f"{option}={escaped(host)}:{escaped(guest)}{mapping}")
    return list(binds.values())
