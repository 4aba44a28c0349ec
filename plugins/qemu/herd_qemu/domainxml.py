"""The libvirt domain that runs one machine: the same VM as the direct engine's, described in XML.

libvirt starts QEMU and virtiofsd from this description; herd keeps what it needs to talk to the
guest: the serial console and the agent's virtio-serial port are Unix sockets that herd listens on
and QEMU connects to. QEMU runs as root without relabelling (a static DAC label), so that it can
open herd's kernel, sockets and taps as they are. A `<metadata>` element in herd's namespace names
the run and the machine: that is how the reaper finds a dead run's domains.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from herd.plugin import HerdError, LaunchPlan
from herd_qemu import confine, guest
from herd_qemu.kernel import QBOOT, ROOT_TAG, Kernel, command_line
from herd_qemu.vm import CPU_MODELS, vcpus

NAMESPACE = "urn:x-herd:libvirt:1"
ET.register_namespace("herd", NAMESPACE)
METADATA_TAG = f"{{{NAMESPACE}}}machine"
# libvirt's types for the two accelerators `vm.prepare` chooses between.
DOMAIN_TYPES = {"kvm": "kvm", "tcg": "qemu"}
PCI_ADDRESS = re.compile(r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])")


@dataclass(frozen=True)
class Sockets:
    """Where herd listens for QEMU's connections: the serial console and the agent's port."""

    console: Path
    agent: Path


def domain_name(run_id: str, machine: str) -> str:
    """Unique per run, and telling whose it is in `virsh list`."""
    return f"herd-{run_id}-{machine}"


def _element(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _pci_address(parent: ET.Element, function: str) -> None:
    """`<address>` of a PCI function as grants name it: "0000:01:00.0" (the domain may be left out)."""
    match = PCI_ADDRESS.fullmatch(function.removeprefix("pci:").lower())
    if match is None:
        raise HerdError(f"{function!r} is not a PCI address such as 0000:01:00.0")
    domain, bus, slot, number = match.groups()
    _element(
        parent,
        "address",
        domain=f"0x{domain or '0000'}",
        bus=f"0x{bus}",
        slot=f"0x{slot}",
        function=f"0x{number}",
    )


def _devices(domain: ET.Element, plan: LaunchPlan, sockets: Sockets) -> None:
    devices = _element(domain, "devices")
    filesystem = _element(devices, "filesystem", type="mount", accessmode="passthrough")
    _element(filesystem, "driver", type="virtiofs")
    # As the direct engine runs it: see direct.VIRTIOFSD_OPTIONS for why.
    binary = _element(filesystem, "binary", path=str(confine.LIBVIRT_FILE_SERVER), xattr="on")
    _element(binary, "cache", mode="always")
    _element(binary, "sandbox", mode="chroot")
    _element(filesystem, "source", dir=str(plan.root.directory))
    _element(filesystem, "target", dir=ROOT_TAG)
    for attachment in plan.attachments:
        interface = _element(devices, "interface", type="ethernet")
        _element(interface, "mac", address=attachment.mac)
        _element(interface, "target", dev=attachment.host_link, managed="no")
        _element(interface, "model", type="virtio")
    serial = _element(devices, "serial", type="unix")
    _element(serial, "source", mode="connect", path=str(sockets.console))
    _element(serial, "target", port="0")
    channel = _element(devices, "channel", type="unix")
    _element(channel, "source", mode="connect", path=str(sockets.agent))
    _element(channel, "target", type="virtio", name=guest.AGENT_PORT)
    video = _element(devices, "video")
    _element(video, "model", type="vga")
    rng = _element(devices, "rng", model="virtio")
    _element(rng, "backend", "/dev/urandom", model="random")
    _element(devices, "controller", type="usb", model="none")
    _element(devices, "memballoon", model="none")
    for grant in plan.grants:
        for function in grant.pci_functions:
            # herd-gpu has bound the function to vfio-pci already: libvirt must not rebind it.
            hostdev = _element(devices, "hostdev", mode="subsystem", type="pci", managed="no")
            _pci_address(_element(hostdev, "source"), function)


def build(plan: LaunchPlan, kernel: Kernel, accelerator: str, sockets: Sockets, uuid: str) -> str:
    """The domain XML of the machine of `plan`."""
    domain = ET.Element("domain", type=DOMAIN_TYPES[accelerator])
    _element(domain, "name", domain_name(plan.run_id, plan.machine.name))
    _element(domain, "uuid", uuid)
    _element(domain, "title", f"herd run {plan.run_id}, machine {plan.machine.name}")
    metadata = _element(domain, "metadata")
    _element(metadata, METADATA_TAG, run=plan.run_id, machine=plan.machine.name)
    _element(domain, "memory", str(plan.machine.memory), unit="MiB")
    _element(domain, "vcpu", str(vcpus(plan.machine)))
    backing = _element(domain, "memoryBacking")
    _element(backing, "source", type="memfd")  # virtio-fs needs the guest's memory shared
    _element(backing, "access", mode="shared")
    boot = _element(domain, "os")
    _element(boot, "type", "hvm", arch="x86_64", machine="pc")
    if QBOOT.exists():
        _element(boot, "loader", str(QBOOT), type="rom")
    _element(boot, "kernel", str(kernel.image))
    _element(boot, "initrd", str(kernel.initramfs))
    _element(boot, "cmdline", command_line(plan.machine, plan.root.init))
    features = _element(domain, "features")
    _element(features, "acpi")  # without it libvirt passes -no-acpi, and a poweroff only halts
    _element(features, "apic")
    if CPU_MODELS[accelerator] == "max":
        _element(domain, "cpu", mode="maximum", check="none")
    else:
        cpu = _element(domain, "cpu", mode="custom", match="exact", check="none")
        _element(cpu, "model", CPU_MODELS[accelerator], fallback="forbid")
    _element(domain, "on_poweroff", "destroy")
    _element(domain, "on_reboot", "restart")
    _element(domain, "on_crash", "destroy")
    _devices(domain, plan, sockets)
    seclabel = _element(domain, "seclabel", type="static", model="dac", relabel="no")
    _element(seclabel, "label", "+0:+0")
    return ET.tostring(domain, encoding="unicode")


def metadata_of(element_xml: str) -> tuple[str, str] | None:
    """(run id, machine) from the metadata element libvirt returns for herd's namespace."""
    try:
        element = ET.fromstring(element_xml)
    except ET.ParseError:
        return None
    run_id, machine = element.get("run"), element.get("machine")
    return (run_id, machine) if run_id and machine else None
