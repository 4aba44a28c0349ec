"""herd-gpu: device grants (entry point `gpu` in `herd.plugins`).

It answers a machine's device requests with neutral grants that backends apply:

- a CDI name, `vendor.com/class=name`, from the CDI specs on the host (`herd_gpu.cdi`);
- `nvidia.com/gpu=<index|UUID|all>` without a CDI spec of that kind, from the NVIDIA driver found
  on the host (`herd_gpu.nvidia`);
- a host path, `/dev/fuse` or a directory such as `/dev/dri`, from the nodes there (`herd_gpu.nodes`);
- `pci:0000:01:00.0`, a PCI function for a VM, once VFIO can take it (`herd_gpu.vfio`).

Grants carry device nodes and mounts (for containers) or PCI functions (for VMs); the core refuses
a grant to a backend that lacks the capability to apply it, naming those that have it.
"""

from __future__ import annotations

from collections.abc import Callable

from herd.plugin import Capability, DeviceGrant, hookimpl
from herd_gpu import cdi, nodes, nvidia, vfio
from herd_gpu.nodes import DeviceError


def _cdi_or_discovered(request: str) -> DeviceGrant:
    registry = cdi.load()
    found = cdi.find(registry, request)
    if found is not None:
        return found
    kind = request.partition("=")[0]
    if kind == nvidia.KIND:
        return nvidia.grant(request, nvidia.discover())
    unreadable = "".join(f"; {problem}" for problem in registry.problems_of(None))
    raise DeviceError(
        f"no CDI spec in {', '.join(registry.dirs) or '(no directory)'} defines kind {kind} "
        f"(`herd devices` lists what this host can grant){unreadable}"
    )


@hookimpl
def herd_device_grant(request: str, capabilities: frozenset[Capability]) -> DeviceGrant | None:
    if request.startswith("pci:"):
        return vfio.grant(request, check_host=Capability.PCI in capabilities)
    if request.startswith("/"):
        return nodes.host_path_grant(request)
    if "=" in request:
        return _cdi_or_discovered(request)
    return None


@hookimpl
def herd_list_devices(offer: Callable[[str, str], None], problem: Callable[[str], None]) -> None:
    registry = cdi.load()
    for qualified, (spec, _) in registry.devices.items():
        offer(qualified, f"CDI spec {spec.path}")
    for wrong in registry.problems:
        problem(str(wrong))
    if nvidia.KIND not in registry.kinds:
        try:
            driver = nvidia.discover()
        except DeviceError as error:
            problem(str(error))
        else:
            for name, about in driver.names():
                offer(name, f"{about}, found on the host")
    for address, group in vfio.passable():
        offer(f"pci:{address}", f"PCI function bound to vfio-pci, IOMMU group {group} (for VMs)")
    offer("/dev/...", "any device node of this host by its path, or a directory of them (/dev/dri)")
