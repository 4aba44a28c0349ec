"""Device grants applied to a container: nodes and mounts bound in (their environment is the core's
`hostimage.apply_grant_environment`).

Several containers may bind the same host node at once: nothing here takes a device for one
container alone. Which nodes a container may open is its device policy (`herd_nspawn.devices`).
"""

from __future__ import annotations

from collections.abc import Iterable

from herd.backend import DeviceGrant, DeviceNode


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


def bind_arguments(grants: Iterable[DeviceGrant]) -> list[str]:
    """systemd-nspawn arguments that bind the grants' nodes and mounts into the container."""
    grants = tuple(grants)
    binds = {
        node.guest_path: f"--bind={_escaped(node.path)}:{_escaped(node.guest_path)}" for node in nodes(grants)
    }
    for grant in grants:
        for host, guest, read_only in grant.mounts:
            option = "--bind-ro" if read_only else "--bind"
            binds.setdefault(guest, f"{option}={_escaped(host)}:{_escaped(guest)}")
    return list(binds.values())
