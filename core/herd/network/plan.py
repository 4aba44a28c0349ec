"""The networks of a run, planned: subnets, addresses, interface names, and what names resolve to.

This is what every network provider's networks have in common, and what the core needs to write
each machine's /etc/hosts and to check a declaration: the provider only places each NIC (its
bridge, host-side link name and MAC: `herd_network_attachment`) and makes the networks.

Planning is deterministic: machine i (in declaration order) is host i+1 of every network it joins,
unless the test fixed its address; networks without a subnet get 192.168.<n>.0/24 (and
fd68:6572:6400:<n>::/64 with IPv6), in declaration order the first n whose subnet overlaps none the
test declared. The last host address of every IPv4 subnet is kept for the provider's own use (the
bridge provider's port-forward gateway; it has no IPv6 address). Every machine has its own network
namespace (or kernel), so two runs may use the same addresses without meeting.

Names: on every machine, each machine it shares a network with resolves as `<name>` to its address
on the first network (in that machine's own order) the two share, and as `<name>.<network>` to its
address on each network they share.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from herd.declare.netspec import DEFAULT_NETWORK, Impairment, MachineNetwork, NetworkSpec, gateway_address
from herd.declare.spec import MachineSpec, TestSpec
from herd.errors import HerdError
from herd.hooks.types import Attachment, NetworkPlan, NicPlan

AUTO_SUBNET = "192.168.{n}.0/24"
AUTO_SUBNET6 = "fd68:6572:6400:{n:x}::/64"  # "herd" in a unique local prefix
_Subnet = TypeVar("_Subnet", ipaddress.IPv4Network, ipaddress.IPv6Network)
# Where a provider places a NIC: herd_network_attachment, asked of the network's provider.
Placement = Callable[[NetworkPlan, NicPlan], Attachment]


@dataclass(frozen=True)
class RunNetworks:
    """Every network of a run, every machine's attachments to them, and what they resolve."""

    networks: tuple[NetworkPlan, ...]
    attachments: dict[str, dict[str, Attachment]]  # machine -> network -> NIC (boot or hot-plug)
    joined: dict[str, tuple[str, ...]]  # machine -> the networks it joins at boot, in its order
    impairments: dict[str, dict[str, Impairment]]  # machine -> network -> as declared

    def network(self, name: str) -> NetworkPlan:
        for plan in self.networks:
            if plan.name == name:
                return plan
        raise KeyError(name)

    def boot_attachments(self, machine: str) -> tuple[Attachment, ...]:
        return tuple(self.attachments[machine][network] for network in self.joined[machine])

    def address_of(self, machine: str, network: str | None = None) -> str:
        """The machine's IPv4 address on `network` (its first one when None)."""
        if network is None:
            if not self.joined[machine]:
                raise HerdError(f"machine {machine} is on no network: name one to get its address there")
            network = self.joined[machine][0]
        if network not in self.attachments[machine]:
            names = ", ".join(n.name for n in self.networks)
            raise HerdError(f"network {network!r} is not one of the test's (networks: {names})")
        return self.attachments[machine][network].addresses[0].split("/")[0]

    def hosts_file(self, machine: str, joined: dict[str, tuple[str, ...]] | None = None) -> str:
        """/etc/hosts for `machine`: the machines it shares a network with (see the module doc)."""
        joined = joined if joined is not None else self.joined
        mine = set(joined[machine])
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for other, networks in joined.items():
            shared = [n for n in networks if n in mine]
            for position, network in enumerate(shared):
                names = f"{other}.{network}" if position else f"{other} {other}.{network}"
                for address in self.attachments[other][network].addresses:
                    lines.append(f"{address.split('/')[0]}\t{names}")
        return "\n".join(lines) + "\n"


def _automatic(
    pattern: str, kind: Callable[[str], _Subnet], count: int, declared: Iterable[_Subnet | None]
) -> Iterator[_Subnet]:
    """The subnets `pattern` gives for n = 1, 2, ..., less those that overlap a declared one."""
    taken = [subnet for subnet in declared if subnet is not None]
    candidates = (kind(pattern.format(n=n)) for n in range(1, count + 1))
    return (subnet for subnet in candidates if not any(subnet.overlaps(t) for t in taken))


def _next_free(free: Iterator[_Subnet], network: str, field_name: str) -> _Subnet:
    subnet = next(free, None)
    if subnet is None:
        raise HerdError(
            f"network {network!r}: the declared subnets leave no automatic {field_name} free: declare one"
        )
    return subnet


def _subnets(
    declared: tuple[NetworkSpec, ...],
) -> dict[str, tuple[ipaddress.IPv4Network, ipaddress.IPv6Network | None]]:
    """Each network's subnets: the declared ones, else the first automatic ones free (see the
    module doc). Raises HerdError when none is free."""
    free = _automatic(AUTO_SUBNET, ipaddress.IPv4Network, 254, (n.subnet for n in declared))
    free6 = _automatic(AUTO_SUBNET6, ipaddress.IPv6Network, 0xFFFF, (n.subnet6 for n in declared))
    chosen = {}
    for network in declared:
        subnet = network.subnet or _next_free(free, network.name, "subnet")
        subnet6 = network.subnet6
        if network.ipv6 and subnet6 is None:
            subnet6 = _next_free(free6, network.name, "subnet6")
        chosen[network.name] = (subnet, subnet6)
    return chosen


def declared_networks(spec: TestSpec) -> tuple[NetworkSpec, ...]:
    """The test's networks, with `default` first when a machine uses it without declaring it."""
    names = {n.name for n in spec.networks}
    used = {nic.network for m in spec.machines for nic in m.nics}
    if DEFAULT_NETWORK in used and DEFAULT_NETWORK not in names:
        return (NetworkSpec(DEFAULT_NETWORK), *spec.networks)
    return spec.networks


def _reserved(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> set[ipaddress._BaseAddress]:
    """The addresses of a subnet no machine takes: its first and last, and on IPv4 herd's gateway's."""
    reserved: set[ipaddress._BaseAddress] = {subnet.network_address, subnet.broadcast_address}
    if isinstance(subnet, ipaddress.IPv4Network):
        reserved.add(gateway_address(subnet))
    return reserved


def capacity_problems(spec: TestSpec) -> list[str]:
    """Problems that would keep the test's machines from getting an address each (every machine
    has an address planned on every network, for it may be connected to any later)."""
    try:
        subnets = _subnets(declared_networks(spec))
    except HerdError as error:
        return [f"test {spec.name!r}: {error}"]
    problems = []
    for network, pair in subnets.items():
        for subnet in pair:
            if subnet is not None and len(spec.machines) > subnet.num_addresses - len(_reserved(subnet)):
                problems.append(
                    f"test {spec.name!r}: {len(spec.machines)} machines do not fit network {network!r} "
                    f"({subnet})"
                )
    return problems


def _addresses(
    machines: tuple[MachineSpec, ...],
    network: str,
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network,
    version: int,
) -> dict[str, str]:
    """Each machine's address on one network, in CIDR: fixed ones first, then host i+1."""
    fixed = {}
    for machine in machines:
        for nic in machine.nics:
            declared = nic.address if version == 4 else nic.address6
            if nic.network == network and declared is not None:
                fixed[machine.name] = declared
    taken = {*fixed.values(), *_reserved(subnet)}
    hosts: Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address] = subnet.hosts()
    chosen = {}
    for index, machine in enumerate(machines):
        address = fixed.get(machine.name) or subnet.network_address + index + 1
        while address in taken and fixed.get(machine.name) != address:
            address = next(hosts)
        taken.add(address)
        chosen[machine.name] = f"{address}/{subnet.prefixlen}"
    return chosen


def _nic(machine: MachineSpec, network: str) -> MachineNetwork | None:
    return next((nic for nic in machine.nics if nic.network == network), None)


def plan(spec: TestSpec, place: Placement) -> RunNetworks:
    """Plan every network of the test, and every machine's NIC on each (those it joins at boot, and
    those it may be connected to later), placed by `place` (the network's provider)."""
    declared = declared_networks(spec)
    subnets = _subnets(declared)
    networks = tuple(
        NetworkPlan(n.name, n.provider, index, *subnets[n.name]) for index, n in enumerate(declared)
    )
    attachments: dict[str, dict[str, Attachment]] = {m.name: {} for m in spec.machines}
    for network in networks:
        ipv4 = _addresses(spec.machines, network.name, network.subnet, 4)
        ipv6 = _addresses(spec.machines, network.name, network.subnet6, 6) if network.subnet6 else {}
        for index, machine in enumerate(spec.machines):
            # the networks it joins at boot, in order (eth0 first); the others come after them
            order = [nic.network for nic in machine.nics]
            position = order.index(network.name) if network.name in order else len(order) + network.index
            nic = NicPlan(
                machine=machine.name,
                machine_index=index,
                network=network.name,
                guest_link=f"eth{position}",
                addresses=tuple(a for a in (ipv4[machine.name], ipv6.get(machine.name)) if a),
            )
            attachments[machine.name][network.name] = place(network, nic)
    impairments = {
        m.name: {nic.network: nic.impairment for nic in m.nics if nic.impairment is not None}
        for m in spec.machines
    }
    joined = {m.name: tuple(nic.network for nic in m.nics) for m in spec.machines}
    return RunNetworks(networks, attachments, joined, impairments)
