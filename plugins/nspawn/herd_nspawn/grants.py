"""Device grants applied to a container: nodes and mounts bound in, environment for its processes.

Several containers may bind the same host node at once: nothing here takes a device for one
container alone. Which nodes a container may open is its device policy (`herd_nspawn.devices`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from herd.backend import DeviceGrant, DeviceNode, MachineRoot

# systemd reads manager settings from here: DefaultEnvironment= reaches every unit it starts.
ENVIRONMENT_DROP_IN = "systemd/system.conf.d/herd-devices.conf"


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


def environment(grants: Iterable[DeviceGrant]) -> dict[str, str]:
    """The variables the grants set; a later grant's value wins."""
    merged: dict[str, str] = {}
    for grant in grants:
        merged.update(grant.environment)
    return merged


def _quoted(assignment: str) -> str:
    """One `NAME=value` as systemd's DefaultEnvironment= takes it: C-quoted."""
    escaped = assignment.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_service_environment(root: MachineRoot, variables: dict[str, str]) -> None:
    """Give every unit of the container the grants' variables, through a manager drop-in in the
    machine's /etc layer (herd's command agent gets them when it enters the container)."""
    if not variables:
        return
    upper = next(overlay.upper for overlay in root.overlays if overlay.target == "/etc")
    path = upper / ENVIRONMENT_DROP_IN
    path.parent.mkdir(parents=True, exist_ok=True)
    assignments = " ".join(_quoted(f"{name}={value}") for name, value in variables.items())
    text = f"# herd: the environment of its device grants\n[Manager]\nDefaultEnvironment={assignments}\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
