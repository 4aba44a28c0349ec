"""CDI devices on this host: the spec directories, fully-qualified names, and their grants.

Specs are read from the directories of $HERD_CDI_SPEC_DIRS (colon-separated), by default
/etc/cdi and /var/run/cdi, as container engines do. A later directory has the higher priority: a
device it defines replaces one of the same name from an earlier directory, while two specs of one
directory that define the same device are in conflict. Specs are read anew for every request, so
a spec written just before a run counts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from herd.plugin import DeviceGrant, DeviceNode
from herd_gpu import nodes
from herd_gpu.nodes import DeviceError
from herd_gpu.specfile import EXTENSIONS, Device, NodeEdit, Spec, SpecFileError, read

SPEC_DIRS_VARIABLE = "HERD_CDI_SPEC_DIRS"
DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
NODE_KINDS = {"b": "b", "c": "c", "u": "c"}  # "u": an unbuffered character device

log = logging.getLogger("herd.gpu")


def spec_dirs() -> tuple[str, ...]:
    value = os.environ.get(SPEC_DIRS_VARIABLE)
    if value is None:
        return DEFAULT_SPEC_DIRS
    return tuple(directory for directory in value.split(":") if directory)


@dataclass
class Registry:
    """The devices the specs of `dirs` define, by qualified name, and the specs that are wrong."""

    dirs: tuple[str, ...]
    devices: dict[str, tuple[Spec, Device]] = field(default_factory=dict)
    kinds: dict[str, list[Path]] = field(default_factory=dict)
    problems: list[SpecFileError] = field(default_factory=list)

    def problems_of(self, kind: str | None) -> list[SpecFileError]:
        return [problem for problem in self.problems if problem.kind == kind]


def load(dirs: tuple[str, ...] | None = None) -> Registry:
    """Read every spec of the directories (by default those of $HERD_CDI_SPEC_DIRS)."""
    registry = Registry(spec_dirs() if dirs is None else dirs)
    for directory in registry.dirs:
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        defined_here: dict[str, Path] = {}
        for name in names:
            path = Path(directory, name)
            if path.suffix not in EXTENSIONS or not path.is_file():
                continue
            try:
                spec = read(path)
            except SpecFileError as problem:
                registry.problems.append(problem)
                continue
            registry.kinds.setdefault(spec.kind, []).append(path)
            for device in spec.devices:
                qualified = f"{spec.kind}={device.name}"
                if qualified in defined_here:
                    registry.problems.append(
                        SpecFileError(
                            path,
                            f"{device.field}.name",
                            f"{qualified} is defined by {defined_here[qualified]} too",
                            spec.kind,
                        )
                    )
                defined_here[qualified] = path
                registry.devices[qualified] = (spec, device)
    return registry


def _node(spec: Spec, edit: NodeEdit) -> DeviceNode:
    if edit.type == "p":
        raise SpecFileError(spec.path, f"{edit.field}.type", "herd grants device nodes, not FIFOs", spec.kind)
    where = f"{edit.field}.hostPath" if edit.host_path != edit.path else f"{edit.field}.path"
    access = "" if edit.permissions == "none" else edit.permissions or "rwm"
    try:
        found = nodes.node(edit.host_path, edit.path, access)
    except DeviceError as error:
        raise SpecFileError(spec.path, where, str(error), spec.kind) from None
    expected = {"type": NODE_KINDS.get(edit.type), "major": edit.major, "minor": edit.minor}
    actual = {"type": found.kind, "major": found.major, "minor": found.minor}
    for name, value in expected.items():
        if value is not None and value != actual[name]:
            raise SpecFileError(
                spec.path,
                f"{edit.field}.{name}",
                f"{value} does not match {edit.host_path} on this host ({actual[name]})",
                spec.kind,
            )
    return found


def grant(spec: Spec, device: Device) -> DeviceGrant:
    """The grant of one CDI device: its spec's edits, then its own (the same order as engines)."""
    edits = spec.edits + device.edits
    qualified = f"{spec.kind}={device.name}"
    mounts = []
    for mount in edits.mounts:
        if not os.path.exists(mount.host_path):
            raise SpecFileError(
                spec.path,
                f"{mount.field}.hostPath",
                f"{mount.host_path} does not exist on this host",
                spec.kind,
            )
        mounts.append((mount.host_path, mount.container_path, "ro" in mount.options))
    for hook in edits.hooks:
        log.warning(
            "%s: herd does not run CDI hooks: %s skips %s (%s hook %s)",
            spec.path,
            qualified,
            hook.field,
            hook.name,
            " ".join((hook.path, *hook.args[1:])),
        )
    for unapplied in edits.unapplied:
        log.warning("%s: herd does not apply %s for %s", spec.path, unapplied, qualified)
    return DeviceGrant(
        request=qualified,
        nodes=tuple(_node(spec, edit) for edit in edits.nodes),
        mounts=tuple(mounts),
        environment=dict(assignment.split("=", 1) for assignment in edits.env),
    )


def find(registry: Registry, request: str) -> DeviceGrant | None:
    """The grant of the CDI device `request` names, or None when no readable spec defines its kind.

    Raises DeviceError when a spec of its kind is wrong, or when the kind has no such device.
    """
    kind, _, name = request.partition("=")
    if problems := registry.problems_of(kind):
        raise DeviceError("; ".join(str(problem) for problem in problems))
    found = registry.devices.get(request)
    if found is not None:
        return grant(*found)
    if kind not in registry.kinds:
        return None
    known = sorted(q.partition("=")[2] for q in registry.devices if q.partition("=")[0] == kind)
    files = ", ".join(str(path) for path in registry.kinds[kind])
    raise DeviceError(f"{files} define no device {name!r} of kind {kind} (it has: {', '.join(known)})")
