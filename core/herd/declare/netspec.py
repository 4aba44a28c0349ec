"""The network part of a test declaration: networks, each machine's NICs, impairment, port forwards.

    herd.Test(
        name="routed",
        networks={"lan": {"subnet": "10.0.1.0/24"}, "wan": {"ipv6": True, "provider": "bridge"}},
        machines={
            "router": {"networks": ["lan", "wan"]},
            "client": {"networks": {"lan": {"address": "10.0.1.50", "delay": 20}}},
            "web": {"networks": ["wan"], "forward_ports": {8080: 80}},
        },
        ...
    )

A test that declares no networks, and a machine that declares none, use the network `default`.
A network's `provider` names the network provider plugin that makes it (`bridge` when it names
none); the run checks that it is installed. Every problem is reported with the test, machine and
field, before anything starts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_NETWORK = "default"
DEFAULT_PROVIDER = "bridge"  # the provider of networks that name none (distribution herd-bridge)
NETWORK_FIELDS = ("subnet", "subnet6", "ipv6", "provider")
MAX_NETWORKS = 36  # one base-36 digit in link names
_NETWORK_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,13}[a-z0-9])?$")
_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)$")
_RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}
IMPAIRMENT_FIELDS = ("delay", "jitter", "loss", "rate")


@dataclass(frozen=True)
class Impairment:
    """What a link does to the traffic it carries towards a machine.

    `delay` and `jitter` in milliseconds, `loss` in percent, `rate` in bits per second.
    """

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    rate: int | None = None


@dataclass(frozen=True)
class NetworkSpec:
    """A network of the test. Subnets that are None are chosen by herd when the run is planned;
    `provider` is the network provider that makes it."""

    name: str
    subnet: ipaddress.IPv4Network | None = None
    subnet6: ipaddress.IPv6Network | None = None
    ipv6: bool = False
    provider: str = DEFAULT_PROVIDER


@dataclass(frozen=True)
class MachineNetwork:
    """One NIC of a machine: the network it joins, and what the test fixed about it."""

    network: str
    address: ipaddress.IPv4Address | None = None
    address6: ipaddress.IPv6Address | None = None
    impairment: Impairment | None = None


Report = Callable[[str], None]


def parse_impairment(values: Mapping[str, Any], report: Report) -> Impairment | None:
    """An Impairment from keyword values (of a declaration or of `machine.impair()`)."""
    ok = True
    numbers: dict[str, float] = {}
    for name in ("delay", "jitter", "loss"):
        value = values.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            unit = "percent" if name == "loss" else "milliseconds"
            report(f"{name} must be a number of {unit} >= 0, got {value!r}")
            ok = False
        else:
            numbers[name] = float(value)
    if ok and numbers["loss"] > 100:
        report(f"loss must be at most 100 (percent), got {values['loss']!r}")
        ok = False
    if ok and numbers["jitter"] and not numbers["delay"]:
        report("jitter needs a delay to vary around")
        ok = False
    rate = values.get("rate")
    bits: int | None = None
    if rate is not None:
        if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0:
            bits = rate
        elif isinstance(rate, str) and (match := _RATE.match(rate.strip().lower())):
            bits = int(float(match.group(1)) * _RATE_UNITS[match.group(2)])
        if bits is None or bits < 8:
            report(
                f"rate must be bits per second (an integer >= 8) or a string such as '2mbit', got {rate!r}"
            )
            ok = False
    if not ok:
        return None
    return Impairment(numbers["delay"], numbers["jitter"], numbers["loss"], bits)


def gateway_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The address herd's port-forward gateway takes on a network: its subnet's last host address.

    The gateway has IPv4 only, so IPv6 subnets keep no address for it.
    """
    return subnet.broadcast_address - 1


def _parse_subnet(value: object, version: int, report: Report) -> Any:
    kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    try:
        subnet = kind(str(value), strict=True)
    except ValueError as error:
        report(f"{value!r} is not an IPv{version} subnet: {error}")
        return None
    if subnet.num_addresses < 4:
        report(f"subnet {subnet} is too small: it needs room for machines and herd's gateway")
        return None
    return subnet


def parse_networks(declaration: object, report: Callable[[str, str | None], None]) -> tuple[NetworkSpec, ...]:
    """The test's declared networks. `report(message, network)` records a problem."""
    if declaration is None:
        return ()
    if not isinstance(declaration, Mapping):
        report(f"expected a mapping of network names to their fields, got {type(declaration).__name__}", None)
        return ()
    networks = []
    for name, declared_fields in declaration.items():
        if not isinstance(name, str) or not _NETWORK_NAME.match(name):
            report(f"network name {name!r} must be lower-case letters, digits and '-', at most 15", None)
            continue
        fields = {} if declared_fields is None else declared_fields
        if not isinstance(fields, Mapping) or set(fields) - set(NETWORK_FIELDS):
            fields_named = ", ".join(map(repr, NETWORK_FIELDS[:-1])) + f" or {NETWORK_FIELDS[-1]!r}"
            report(f"expected a mapping with {fields_named}", name)
            continue

        def note(message: str, name: str = name) -> None:
            report(message, name)

        subnet = _parse_subnet(fields["subnet"], 4, note) if "subnet" in fields else None
        subnet6 = _parse_subnet(fields["subnet6"], 6, note) if "subnet6" in fields else None
        ipv6 = fields.get("ipv6", subnet6 is not None)
        if not isinstance(ipv6, bool):
            note(f"ipv6 must be true or false, got {ipv6!r}")
            continue
        if not ipv6 and "subnet6" in fields:
            note("'ipv6': False conflicts with 'subnet6', which gives the network IPv6: drop one of them")
            continue
        provider = fields.get("provider", DEFAULT_PROVIDER)
        if not isinstance(provider, str) or not _PROVIDER_NAME.match(provider):
            note(f"provider must name a network provider (such as {DEFAULT_PROVIDER!r}), got {provider!r}")
            continue
        networks.append(NetworkSpec(name, subnet, subnet6, ipv6 or subnet6 is not None, provider))
    if len(networks) > MAX_NETWORKS:
        report(f"a test can have at most {MAX_NETWORKS} networks, this one declares {len(networks)}", None)
    for index, first in enumerate(networks):
        for second in networks[index + 1 :]:
            for a, b in ((first.subnet, second.subnet), (first.subnet6, second.subnet6)):
                if a is not None and b is not None and a.overlaps(b):
                    report(f"subnet {a} overlaps network {second.name!r}'s subnet {b}", first.name)
    return tuple(networks)


def parse_machine_networks(value: object, report: Report) -> tuple[MachineNetwork, ...]:
    """A machine's `networks` field: a list of names, or a mapping of names to NIC fields."""
    if isinstance(value, list | tuple):
        value = dict.fromkeys(value)
    if not isinstance(value, Mapping):
        report(
            f"expected a list of network names, or a mapping of them to fields, got {type(value).__name__}"
        )
        return ()
    nics = []
    for name, declared_fields in value.items():
        if not isinstance(name, str):
            report(f"{name!r} is not a network name")
            continue
        fields = {} if declared_fields is None else declared_fields
        if not isinstance(fields, Mapping):
            report(f"network {name!r}: expected a mapping of fields, got {type(fields).__name__}")
            continue
        unknown = set(fields) - {"address", "address6", *IMPAIRMENT_FIELDS}
        if unknown:
            report(f"network {name!r}: unknown field(s) {sorted(unknown)} (fields: address, address6, "
                   f"{', '.join(IMPAIRMENT_FIELDS)})")  # fmt: skip
            continue

        def note(message: str, name: str = name) -> None:
            report(f"network {name!r}: {message}")

        address = address6 = None
        try:
            address = ipaddress.IPv4Address(fields["address"]) if "address" in fields else None
            address6 = ipaddress.IPv6Address(fields["address6"]) if "address6" in fields else None
        except ValueError as error:
            note(str(error))
            continue
        impairment = None
        if any(key in fields for key in IMPAIRMENT_FIELDS):
            impairment = parse_impairment(fields, note)
            if impairment is None:
                continue
        nics.append(MachineNetwork(name, address, address6, impairment))
    return tuple(nics)


def parse_forward_ports(value: object, report: Report) -> dict[int, int]:
    """A machine's `forward_ports` field: host port -> port in the machine."""
    if not isinstance(value, Mapping):
        report(f"expected a mapping of host ports to machine ports, got {type(value).__name__}")
        return {}
    ports = {}
    for host, guest in value.items():
        valid = all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in (host, guest))
        if not valid:
            report(f"{host!r}: {guest!r} is not a pair of TCP ports (1 to 65535)")
            continue
        ports[host] = guest
    return ports


def check_topology(
    networks: tuple[NetworkSpec, ...],
    machines: Mapping[str, tuple[MachineNetwork, ...] | None],
    forwards: Mapping[str, Mapping[int, int]],
    report: Callable[[str, str | None, str | None], None],
) -> None:
    """Problems across machines: undeclared networks, addresses outside their subnet or taken twice,
    port forwards on machines without a network or to a host port taken twice."""
    declared = {n.name: n for n in networks}
    addresses: dict[tuple[str, object], str] = {}
    for machine, nics in machines.items():
        for nic in nics or ():
            network = declared.get(nic.network)
            if network is None and nic.network != DEFAULT_NETWORK:
                names = ", ".join(sorted({*declared, DEFAULT_NETWORK}))
                report(f"network {nic.network!r} is not declared (networks: {names})", machine, "networks")
                continue
            subnet4, subnet6 = (network.subnet, network.subnet6) if network is not None else (None, None)
            for address, subnet, version in ((nic.address, subnet4, 4), (nic.address6, subnet6, 6)):
                if address is None:
                    continue
                if version == 6 and (network is None or not network.ipv6):
                    report(
                        f"network {nic.network!r} has no IPv6: cannot take address6 {address}",
                        machine,
                        "networks",
                    )
                elif subnet is None:
                    field_name = "subnet" if version == 4 else "subnet6"
                    report(
                        f"give network {nic.network!r} a {field_name} to fix addresses in it",
                        machine,
                        "networks",
                    )
                elif address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
                    report(
                        f"address {address} is not a host address of {nic.network!r} ({subnet})",
                        machine,
                        "networks",
                    )
                elif isinstance(subnet, ipaddress.IPv4Network) and address == gateway_address(subnet):
                    report(
                        f"address {address} is kept for herd's gateway on {nic.network!r}",
                        machine,
                        "networks",
                    )
                elif (nic.network, address) in addresses:
                    other = addresses[(nic.network, address)]
                    report(f"address {address} on {nic.network!r} is also {other!r}'s", machine, "networks")
                addresses[(nic.network, address)] = machine
    host_ports: dict[int, str] = {}
    for machine, ports in forwards.items():
        if ports and machines.get(machine) == ():
            report(
                "the machine is on no network, so no port can be forwarded to it", machine, "forward_ports"
            )
        for host in ports:
            if host in host_ports:
                report(
                    f"host port {host} is forwarded to {host_ports[host]!r} already", machine, "forward_ports"
                )
            host_ports[host] = machine
