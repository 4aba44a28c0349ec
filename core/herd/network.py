"""The networks of a run, planned: bridges, addresses, MAC addresses, link names, /etc/hosts.

Planning is pure and deterministic (the same test gets the same addresses and MACs in every run); the
links themselves are made by `herd.links`. Every run has its own bridges and every machine its own
network namespace, so two runs may use the same addresses without meeting. Link names carry the run
id, so two runs never collide on them either.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from herd.backend import Attachment
from herd.spec import MachineSpec, TestSpec

DEFAULT_NETWORK = "default"
DEFAULT_SUBNET = ipaddress.IPv4Network("192.168.1.0/24")
LINK_PREFIX = "herd"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if not number:
            return text


def bridge_name(run_id: str, network_index: int) -> str:
    return f"{LINK_PREFIX}{run_id}b{_base36(network_index)}"


def host_link_name(run_id: str, machine_index: int, network_index: int) -> str:
    return f"{LINK_PREFIX}{run_id}m{_base36(machine_index)}n{_base36(network_index)}"


def mac_address(network_index: int, machine_index: int) -> str:
    """A locally administered MAC: 02:68:64 ("hd"), the network, then the machine."""
    return f"02:68:64:{network_index:02x}:{machine_index >> 8 & 0xFF:02x}:{machine_index & 0xFF:02x}"


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    index: int
    subnet: ipaddress.IPv4Network
    bridge: str


@dataclass(frozen=True)
class RunNetworks:
    """Every network of a run and every machine's attachments to them."""

    networks: tuple[NetworkPlan, ...]
    attachments: dict[str, tuple[Attachment, ...]]

    def address_of(self, machine: str, network: str = DEFAULT_NETWORK) -> str:
        for attachment in self.attachments[machine]:
            if attachment.network == network:
                return attachment.addresses[0].split("/")[0]
        raise KeyError(f"{machine} is not on network {network}")

    def hosts_file(self) -> str:
        """/etc/hosts for every machine: each machine's name resolves to its address."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for machine, attachments in self.attachments.items():
            for attachment in attachments:
                lines.append(f"{attachment.addresses[0].split('/')[0]}\t{machine}")
        return "\n".join(lines) + "\n"


def capacity_problems(spec: TestSpec) -> list[str]:
    """Problems that would keep the test's machines from getting an address each."""
    room = DEFAULT_SUBNET.num_addresses - 2
    if len(spec.machines) > room:
        count = len(spec.machines)
        return [f"test {spec.name!r}: {count} machines do not fit the default network {DEFAULT_SUBNET}"]
    return []


def plan(run_id: str, machines: tuple[MachineSpec, ...]) -> RunNetworks:
    """One default network that every machine joins, machine i at host address i+1."""
    network = NetworkPlan(DEFAULT_NETWORK, 0, DEFAULT_SUBNET, bridge_name(run_id, 0))
    hosts = list(network.subnet.hosts())
    if len(machines) > len(hosts):
        raise ValueError(f"{len(machines)} machines do not fit in {network.subnet}")
    attachments = {
        machine.name: (
            Attachment(
                network=network.name,
                bridge=network.bridge,
                host_link=host_link_name(run_id, index, network.index),
                guest_link="eth0",
                mac=mac_address(network.index, index + 1),
                addresses=(f"{hosts[index]}/{network.subnet.prefixlen}",),
            ),
        )
        for index, machine in enumerate(machines)
    }
    return RunNetworks((network,), attachments)
