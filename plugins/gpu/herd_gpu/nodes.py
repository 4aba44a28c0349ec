"""Host device nodes: one by its path, or every one under a directory (/dev/dri, /dev/snd)."""

from __future__ import annotations

import os
import stat

from herd.plugin import DeviceGrant, DeviceNode, HerdError

KINDS = {stat.S_IFCHR: "c", stat.S_IFBLK: "b"}


class DeviceError(HerdError):
    """A device request that cannot be granted; the message says why, and what to do about it."""


def node(host: str, guest: str, access: str = "rwm") -> DeviceNode:
    """The device node at `host` (links followed), to appear at `guest` in a machine."""
    try:
        status = os.stat(host)
    except FileNotFoundError:
        raise DeviceError(f"{host} does not exist on this host") from None
    kind = KINDS.get(stat.S_IFMT(status.st_mode))
    if kind is None:
        raise DeviceError(f"{host} is not a device node")
    return DeviceNode(host, guest, kind, os.major(status.st_rdev), os.minor(status.st_rdev), access)


def _nodes_under(directory: str) -> list[DeviceNode]:
    found = []
    for parent, _, names in sorted(os.walk(directory)):
        for name in sorted(names):
            path = os.path.join(parent, name)
            if stat.S_IFMT(os.lstat(path).st_mode) in KINDS:  # links (by-path/, by-id/) lead to these
                found.append(node(path, path))
    return found


def host_path_grant(request: str) -> DeviceGrant:
    """A grant of the node at the host path `request`, or of every node under that directory."""
    if os.path.isdir(request):
        found = _nodes_under(request)
        if not found:
            raise DeviceError(f"{request} holds no device nodes")
        return DeviceGrant(request=request, nodes=tuple(found))
    try:
        return DeviceGrant(request=request, nodes=(node(request, request),))
    except DeviceError as error:
        raise DeviceError(
            f"{error} (a host path request names a device node or a directory of them)"
        ) from None
