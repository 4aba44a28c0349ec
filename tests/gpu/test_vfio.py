"""VFIO checks on fake sysfs trees: what a VM may take, and what to run when it may not."""

from __future__ import annotations

import pytest

from herd.declare.spec import parse_test
from herd.errors import SpecError
from herd.hooks.manager import Plugins
from herd.run.resolve import resolve_backends, resolve_devices
from herd_gpu import vfio
from herd_gpu.nodes import DeviceError

from .conftest import FakeSysfs

GPU = "0000:01:00.0"
AUDIO = "0000:01:00.1"


def refusal(request: str) -> str:
    with pytest.raises(DeviceError) as caught:
        vfio.grant(request, check_host=True)
    return str(caught.value)


def test_a_viable_function_is_granted(sysfs: FakeSysfs) -> None:
    sysfs.add(GPU, 12, "vfio-pci")
    sysfs.add(AUDIO, 12, None)  # no driver: harmless
    sysfs.add("0000:00:01.0", 12, "pcieport", pci_class=0x060400)  # a bridge: allowed by the kernel
    sysfs.add("0000:00:1f.0", 13, "lpc_ich")  # another group: none of our business
    grant = vfio.grant(f"pci:{GPU.upper()}", check_host=True)
    assert (grant.request, grant.pci_functions, grant.nodes, grant.mounts) == (
        f"pci:{GPU.upper()}",
        (GPU,),
        (),
        (),
    )
    assert vfio.check(GPU) == 12
    assert vfio.passable() == [(GPU, 12)]


def test_a_function_bound_to_its_driver_says_how_to_rebind_it(sysfs: FakeSysfs) -> None:
    sysfs.add(GPU, 12, "nouveau")
    message = refusal(f"pci:{GPU}")
    devices = sysfs.root / "bus/pci/devices"
    assert message == (
        f"PCI function {GPU} is bound to nouveau, not to vfio-pci; as root run:\n"
        f"    modprobe vfio-pci\n"
        f"    echo vfio-pci > {devices}/{GPU}/driver_override\n"
        f"    echo {GPU} > {devices}/{GPU}/driver/unbind\n"
        f"    echo {GPU} > {sysfs.root}/bus/pci/drivers_probe"
    )
    assert vfio.passable() == []


def test_an_unbound_function_with_vfio_loaded(sysfs: FakeSysfs) -> None:
    sysfs.load_driver("vfio-pci")
    sysfs.add(GPU, 12, None)
    message = refusal(f"pci:{GPU}")
    assert message.startswith(
        f"PCI function {GPU} is bound to no driver, not to vfio-pci; as root run:\n    echo"
    )
    assert "modprobe" not in message and "unbind" not in message


def test_a_group_with_a_function_still_on_its_driver_is_not_viable(sysfs: FakeSysfs) -> None:
    sysfs.add(GPU, 12, "vfio-pci")
    sysfs.add(AUDIO, 12, "snd_hda_intel")
    message = refusal(f"pci:{GPU}")
    assert message.startswith(
        f"IOMMU group 12 of PCI function {GPU} is not viable: {AUDIO} is bound to snd_hda_intel. Every "
        "function of the group must be bound to vfio-pci (or to no driver) before a VM can take one; "
        "as root run:"
    )
    assert f"echo {AUDIO} > {sysfs.root}/bus/pci/devices/{AUDIO}/driver/unbind" in message
    assert f"{GPU}/driver_override" not in message
    assert vfio.passable() == []


def test_no_iommu_and_no_such_function(sysfs: FakeSysfs) -> None:
    sysfs.add(GPU, None, "vfio-pci")
    assert "is in no IOMMU group: the IOMMU is off" in refusal(f"pci:{GPU}")
    assert "intel_iommu=on or amd_iommu=on" in refusal(f"pci:{GPU}")
    assert (
        refusal("pci:0000:09:00.0")
        == "this host has no PCI function 0000:09:00.0 (`lspci -D` lists those it has)"
    )


def test_a_container_asking_for_a_pci_function_hears_its_backend_cannot_take_one(sysfs: FakeSysfs) -> None:
    sysfs.add(GPU, 12, "nouveau")  # not passable either: the capability is the problem to report
    spec = parse_test("t", {"c": {"backend": "nspawn", "devices": [f"pci:{GPU}"]}}, "pass")
    plugins = Plugins()
    spec, infos = resolve_backends(spec, plugins, None)
    with pytest.raises(SpecError) as caught:
        resolve_devices(spec, plugins, infos)
    [problem] = caught.value.problems
    assert f"'pci:{GPU}' needs the 'pci' capability, which backend 'nspawn' lacks" in problem
    assert "vfio" not in problem.lower()
