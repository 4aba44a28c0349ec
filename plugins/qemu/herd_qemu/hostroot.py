"""A machine's root assembled in the host's mount namespace, for a file server that runs there.

The direct engine mounts the root inside QEMU's own mount namespace; libvirt starts virtiofsd
itself, in the host's, so the libvirt engine mounts the same things (`plan.root`'s read-only
binds, overlays and binds, in that order) on the host, under the machine's state directory. Mounts
there belong to the run by their path: if herd dies before it unmounts them, the core's reaper
finds and unmounts them with the rest of the run's state (`herd.host.residue`).
"""

from __future__ import annotations

from pathlib import Path

from herd.plugin import LaunchPlan, MachineError, Overlay, libc
from herd_qemu import confine

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000


def overlay_options(plan: LaunchPlan, overlay: Overlay) -> str:
    """The mount options of one of the root's overlays, with its work directory made (under the
    machine's state directory) where it has an upper layer; both engines mount the overlays with
    these."""
    options = f"lowerdir={':'.join(overlay.lowers)}"
    if overlay.upper is None:  # read-only
        return options
    work = plan.state_dir / f"{overlay.target.strip('/').replace('/', '-')}-work"
    work.mkdir(exist_ok=True)
    return f"{options},upperdir={overlay.upper},workdir={work}"


def assemble(plan: LaunchPlan) -> list[Path]:
    """Mount the root's pieces under `plan.root.directory`; return the mount points in the order
    they were mounted. On failure, unmount what was mounted and raise MachineError."""
    root = plan.root.directory
    mounted: list[Path] = []
    try:
        for host, guest_path in plan.root.read_only_binds:
            target = root / guest_path.lstrip("/")
            libc.mount(host, target, None, MS_BIND, None)
            mounted.append(target)
            libc.mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        for overlay in plan.root.overlays:
            target = root / overlay.target.lstrip("/")
            libc.mount("herd", target, "overlay", 0, overlay_options(plan, overlay))
            mounted.append(target)
        for host, guest_path in confine.served_binds(plan):
            target = root / guest_path.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            libc.mount(host, target, None, MS_BIND, None)
            mounted.append(target)
    except OSError as error:
        disassemble(mounted)
        raise MachineError(f"machine {plan.machine.name}: cannot assemble its root: {error}") from None
    return mounted


def disassemble(mounted: list[Path]) -> None:
    """Unmount what `assemble` mounted, last first. Lazily: the file server may still be letting go
    of a file as it exits, and the next boot mounts afresh on the same points."""
    for point in reversed(mounted):
        libc.unmount(point)
