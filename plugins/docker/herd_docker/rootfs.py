"""A machine root (`plan.root`) assembled for a Docker container.

The engine cannot mount overlays with a host directory as the lower layer, so herd mounts each of
the root's overlays (/etc and /var of the host image, and the read-only stacks of an image with
layers, such as /usr with a machine's packages) on the host, below the machine's state directory,
and the container gets them as bind mounts. Mounts there are the run's by their path:
after a crash the reaper unmounts them like the rest of the run's state. The root directory's own
top-level directories (/root, /home, /srv, /tmp and whatever the test placed files in) are bound
from the root directory itself, so that files land where they do on other container backends.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from herd.plugin import BOOT_TARGET, LaunchPlan, MachineError, MachineRoot, idmap, libc

# What the engine mounts itself, or what is made fresh at each boot.
ENGINE_PROVIDED = frozenset({"proc", "sys", "dev", "run"})
# Files the engine places in every container unless it is given them: from the machine's own /etc.
ENGINE_NETWORK_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def _overlay_paths(plan: LaunchPlan, target: str) -> tuple[Path, Path]:
    """Where the overlay for `target` is mounted on the host, and its work directory."""
    name = target.strip("/").replace("/", "-")
    return plan.state_dir / "mounts" / name, plan.state_dir / "work" / name


@dataclass
class Mounts:
    """What herd mounted on the host for one container, by the machine path each one serves."""

    overlays: dict[str, Path] = field(default_factory=dict)  # the root's /etc and /var, and stacks
    shared: dict[str, Path] = field(default_factory=dict)  # the host's /usr and the like, id-mapped

    def points(self) -> list[Path]:
        return [*self.overlays.values(), *self.shared.values()]


def mount_overlays(plan: LaunchPlan, mounts: Mounts, lowers: Path | None = None) -> None:
    """Mount the root's overlays on the host, each recorded in `mounts` as soon as it is mounted.

    `lowers`, for a user's image, holds the image's own directories to use as the lower layers in
    place of the host's.
    """
    for overlay in plan.root.overlays:
        point, work = _overlay_paths(plan, overlay.target)
        point.mkdir(parents=True, exist_ok=True)
        stack = overlay.lowers if lowers is None else (str(lowers / overlay.target.strip("/")),)
        options = f"lowerdir={':'.join(stack)}"
        if overlay.upper is not None:
            work.mkdir(parents=True, exist_ok=True)
            options += f",upperdir={overlay.upper},workdir={work}"
        try:
            libc.mount("overlay", point, "overlay", 0, options)
        except OSError as error:
            raise MachineError(
                f"machine {plan.machine.name}: cannot mount the overlay of {overlay.target} "
                f"({options}): {error.strerror}"
            ) from None
        mounts.overlays[overlay.target] = point


def mount_shared(plan: LaunchPlan, mounts: Mounts, shift: int) -> None:
    """Mount the host's read-only shared directories (/usr and the like) id-mapped for a machine
    whose root is host id `shift`, each recorded in `mounts`: the engine binds a mount it is given
    as it is, so the machine sees host root's files as its own root's, SUID bits and file
    capabilities included, uncopied and read-only."""
    for host, guest in plan.root.read_only_binds:
        point = plan.state_dir / "shared" / guest.strip("/").replace("/", "-")
        point.mkdir(parents=True, exist_ok=True)
        try:
            idmap.mount_idmapped(host, point, shift)
        except OSError as error:
            raise MachineError(f"machine {plan.machine.name}: {error.strerror}") from None
        mounts.shared[guest] = point


def unmount(points: Iterable[Path]) -> None:
    """Unmount what `mount_overlays` and `mount_shared` mounted (lazily: the container may still be
    letting go)."""
    for point in points:
        libc.unmount(point)


def _host_path(machine_path: str, sources: dict[str, str]) -> str | None:
    """Where `machine_path` is on the host, by the longest mount that contains it."""
    for target in sorted(sources, key=len, reverse=True):
        if machine_path == target or machine_path.startswith(target.rstrip("/") + "/"):
            return sources[target] + machine_path[len(target) :]
    return None


def hide_enabled_units(root: MachineRoot, lowers: Path) -> None:
    """Make the unit dependency directories of an image's /etc opaque in the machine's layer, as
    the host image does with the host's: a machine starts only what the test asks for."""
    upper = next(overlay.upper for overlay in root.overlays if overlay.target == "/etc" and overlay.upper)
    units = lowers / "etc" / "systemd" / "system"
    if not units.is_dir():
        return
    for entry in os.scandir(units):
        if entry.name.endswith((".wants", ".requires")) and not entry.name.startswith(BOOT_TARGET):
            hidden = upper / "systemd" / "system" / entry.name
            hidden.mkdir(parents=True, exist_ok=True)
            os.setxattr(hidden, "trusted.overlay.opaque", b"y")


def binds(root: MachineRoot, mounts: Mounts, host_os: bool) -> list[tuple[str, str, bool]]:
    """(host path, machine path, read-only) of every bind that makes up the machine's file system;
    the host's /usr and the like (id-mapped where `mounts` has them so) only where the machine
    runs the host's OS (`host_os`)."""
    found = []
    if host_os:
        found += [(str(mounts.shared.get(guest, host)), guest, True) for host, guest in root.read_only_binds]
    read_only = {overlay.target for overlay in root.overlays if overlay.upper is None}
    found += [(str(point), target, target in read_only) for target, point in mounts.overlays.items()]
    # The root directory's mount points for the host's /usr and the like are not the machine's own.
    mounted = {guest for _, guest in root.read_only_binds} | set(mounts.overlays)
    for entry in sorted(os.scandir(root.directory), key=lambda e: e.name):
        guest = f"/{entry.name}"
        if entry.is_dir(follow_symlinks=False) and entry.name not in ENGINE_PROVIDED and guest not in mounted:
            found.append((entry.path, guest, False))
    found += [(host, guest, False) for host, guest in root.binds]
    sources = {guest: host for host, guest, _ in found}
    for path in ENGINE_NETWORK_FILES:
        host = _host_path(path, sources)
        if host is not None and os.path.isfile(host) and not os.path.islink(host):
            found.append((host, path, False))
    return found
