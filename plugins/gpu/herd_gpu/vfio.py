"""PCI functions for VMs, passed through with VFIO: the checks before a VM may take one.

A function can be handed to a VM when the IOMMU puts it in a group of its own making (the kernel
isolates groups, not functions), the function is bound to vfio-pci, and its whole group is
*viable*: every other member is bound to vfio-pci too, or to pci-stub, or to no driver, or is a
PCI bridge (the kernel's own rule, drivers/vfio). The checks read sysfs under $HERD_SYSFS_ROOT (by
default /sys) and explain what to run when one fails.
"""

from __future__ import annotations

import os
from pathlib import Path

from herd.plugin import DeviceGrant
from herd_gpu.nodes import DeviceError

SYSFS_VARIABLE = "HERD_SYSFS_ROOT"
VFIO_DRIVER = "vfio-pci"
HARMLESS_DRIVERS = (VFIO_DRIVER, "pci-stub")
BRIDGE_CLASSES = (0x0604, 0x0607)  # PCI-to-PCI and CardBus bridges


def sysfs_root() -> Path:
    return Path(os.environ.get(SYSFS_VARIABLE, "/sys"))


def _driver(device: Path) -> str | None:
    link = device / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def _is_bridge(device: Path) -> bool:
    try:
        return int((device / "class").read_text(), 16) >> 8 in BRIDGE_CLASSES
    except (OSError, ValueError):
        return False


def _bind_commands(sysfs: Path, address: str, driver: str | None) -> list[str]:
    device = sysfs / "bus/pci/devices" / address
    commands = [f"echo {VFIO_DRIVER} > {device}/driver_override"]
    if driver is not None:
        commands.append(f"echo {address} > {device}/driver/unbind")
    commands.append(f"echo {address} > {sysfs}/bus/pci/drivers_probe")
    return commands


def _how_to_bind(sysfs: Path, functions: list[tuple[str, str | None]]) -> str:
    steps = []
    if not (sysfs / "bus/pci/drivers" / VFIO_DRIVER).is_dir():
        steps.append(f"modprobe {VFIO_DRIVER}")
    for address, driver in functions:
        steps += _bind_commands(sysfs, address, driver)
    return "; as root run:\n    " + "\n    ".join(steps)


def _describe(driver: str | None) -> str:
    return "bound to no driver" if driver is None else f"bound to {driver}"


def check(address: str, sysfs: Path | None = None) -> int:
    """Check that the function at `address` can be passed to a VM; return its IOMMU group."""
    sysfs = sysfs_root() if sysfs is None else sysfs
    device = sysfs / "bus/pci/devices" / address
    if not device.exists():
        raise DeviceError(f"this host has no PCI function {address} (`lspci -D` lists those it has)")
    group_link = device / "iommu_group"
    if not group_link.exists():
        raise DeviceError(
            f"PCI function {address} is in no IOMMU group: the IOMMU is off. Turn it on in the firmware "
            "(VT-d, AMD-Vi) and on the kernel command line (intel_iommu=on or amd_iommu=on), then reboot"
        )
    group = int(os.path.basename(os.readlink(group_link)))
    driver = _driver(device)
    if driver != VFIO_DRIVER:
        raise DeviceError(
            f"PCI function {address} is {_describe(driver)}, not to {VFIO_DRIVER}"
            + _how_to_bind(sysfs, [(address, driver)])
        )
    members = sorted((sysfs / "kernel/iommu_groups" / str(group) / "devices").iterdir())
    blocking = [
        (member.name, _driver(member))
        for member in members
        if _driver(member) not in (*HARMLESS_DRIVERS, None) and not _is_bridge(member)
    ]
    if blocking:
        listing = ", ".join(f"{name} is {_describe(driver)}" for name, driver in blocking)
        raise DeviceError(
            f"IOMMU group {group} of PCI function {address} is not viable: {listing}. Every function of "
            f"the group must be bound to {VFIO_DRIVER} (or to no driver) before a VM can take one"
            + _how_to_bind(sysfs, blocking)
        )
    return group


def grant(request: str, check_host: bool) -> DeviceGrant:
    """The grant of `pci:<address>`, after checking (if `check_host`: the machine can take PCI
    functions at all) that the function can be passed through."""
    address = request.removeprefix("pci:").lower()
    if check_host:
        check(address)
    return DeviceGrant(request=request, pci_functions=(address,))


def passable(sysfs: Path | None = None) -> list[tuple[str, int]]:
    """(address, IOMMU group) of every function bound to vfio-pci whose group is viable."""
    sysfs = sysfs_root() if sysfs is None else sysfs
    driver = sysfs / "bus/pci/drivers" / VFIO_DRIVER
    if not driver.is_dir():
        return []
    found = []
    for entry in sorted(driver.iterdir()):
        if entry.is_symlink() and (sysfs / "bus/pci/devices" / entry.name).exists():
            try:
                found.append((entry.name, check(entry.name, sysfs)))
            except DeviceError:
                continue
    return found
