"""Device grants applied to a container: nodes and mounts bound in (their environment is the core's
`hostimage.apply_grant_environment`).

Several containers may bind the same host node at once: nothing here takes a device for one
container alone. Which nodes a container may open is its device policy (`herd_nspawn.devices`).

A container's root is not host root, and the host's device nodes belong to host root (`/dev/kvm`
is root:kvm 0660): bound as they are, a machine could not open them. Each granted node is therefore
bound from a twin that herd makes in the machine's state directory: the same device numbers and
mode, owned as the machine sees the host node's owner (devtmpfs takes no id-mapped mounts). A
read-only granted mount (a driver's libraries) is bound id-mapped where its file system allows it,
so that host root's files are the machine root's, SUID bits and file capabilities included. A
writable one is bound as it is: what the machine writes there is owned by its unprivileged host
ids, never host root's (an id-mapped writable mount would let it leave a SUID-root program on the
host), and it writes only where the mode lets anyone.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from herd.backend import DeviceGrant, DeviceNode
from herd.idmap import shifted


def nodes(grants: Iterable[DeviceGrant]) -> list[DeviceNode]:
    """The grants' device nodes, once each (two grants often share control nodes)."""
    found: dict[str, DeviceNode] = {}
    for grant in grants:
        for node in grant.nodes:
            found.setdefault(node.guest_path, node)
    return list(found.values())


def _escaped(path: str) -> str:
    """A path as systemd-nspawn's --bind takes it: backslash escapes, so `\\:` for a colon."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def _twin(node: DeviceNode, directory: Path, index: int, shift: int) -> Path:
    """A node like `node` in `directory`, owned as a machine whose root is host id `shift` sees
    the host node's owner; made once per machine."""
    twin = directory / str(index)
    if not twin.exists():
        info = os.stat(node.path)
        directory.mkdir(exist_ok=True)
        os.mknod(twin, stat.S_IFMT(info.st_mode) | 0o600, info.st_rdev)
        os.chown(twin, shifted(info.st_uid, shift), shifted(info.st_gid, shift))
        os.chmod(twin, stat.S_IMODE(info.st_mode))
    return twin


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
    for index, node in enumerate(nodes(grants)):
        twin = _twin(node, twins, index, shift)
        binds[node.guest_path] = f"--bind={_escaped(str(twin))}:{_escaped(node.guest_path)}"
    for grant in grants:
        for host, guest, read_only in grant.mounts:
            option = "--bind-ro" if read_only else "--bind"
            mapping = ":idmap" if read_only and file_system_type(host) in IDMAPPABLE else ""
            binds.setdefault(guest, f"{option}={_escaped(host)}:{_escaped(guest)}{mapping}")
    return list(binds.values())
