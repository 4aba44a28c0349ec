"""A second network provider, `tunnel`, standing beside the bridge one without touching the core.

Each of its networks is split into two sites, as a network between two hosts would be: two bridges,
joined by a VXLAN tunnel that runs over the host's loopback (so its traffic stays on this host).
Machines alternate between the sites by their index, so two machines next to each other in a test
reach each other through the tunnel. Like a tunnel provider between hosts, it tells the far site
where a machine's MAC lives once the machine's NIC is plugged in (`herd_network_connected`), and
forgets it when the NIC goes. It can cut a machine off (`block`), but neither impair links nor
forward ports: the core refuses both on its networks.

It imports nothing of herd but `herd.plugin`, and makes its tunnels with pyroute2 itself: the link
helper's primitives make bridges and plug machines in, not tunnels.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute

from herd.plugin import (
    RUN_ID_LENGTH,
    Attachment,
    NetworkFeature,
    NetworkHandle,
    NetworkPlan,
    NetworkProviderInfo,
    NicPlan,
    hookimpl,
    links,
)

NAME = "tunnel"
PREFIX = "hx"  # every link and firewall tag of the provider's starts with it, then the run id
SITES = "ab"
VNI = 42
ANY_MAC = "00:00:00:00:00:00"  # the tunnel's default entry: where frames for unknown MACs go
FIREWALL = {"iptables": Path("/proc/sys/net/bridge/bridge-nf-call-iptables")}


def bridge(run_id: str, network: int, site: int) -> str:
    return f"{PREFIX}{run_id}{SITES[site]}{network}"


def tunnel_end(run_id: str, network: int, site: int) -> str:
    return f"{PREFIX}{run_id}{'xy'[site]}{network}"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def _firewall_commands() -> Iterator[str]:
    """The commands whose FORWARD chain sees bridged frames here (br_netfilter)."""
    for command, sysctl in FIREWALL.items():
        with contextlib.suppress(FileNotFoundError):
            if sysctl.read_text().strip() == "1" and shutil.which(command):
                yield command


def _rule(run_id: str) -> list[str]:
    """ACCEPT what enters and leaves the run's bridges (`+`: every name that starts so)."""
    links_of_run = f"{PREFIX}{run_id}+"
    comment = ["-m", "comment", "--comment", f"{PREFIX}:{run_id}"]
    return ["FORWARD", "-i", links_of_run, "-o", links_of_run, *comment, "-j", "ACCEPT"]


@dataclass(eq=False)
class Tunnels(NetworkHandle):
    ports: dict[str, tuple[int, int]] = field(default_factory=dict, kw_only=True)  # network: each site's
    rules: list[str] = field(default_factory=list, kw_only=True)  # the commands a rule was added with

    def network(self, name: str) -> NetworkPlan:
        return next(network for network in self.networks if network.name == name)

    def far_end(self, attachment: Attachment) -> tuple[str, int]:
        """The tunnel end of the site across from the NIC's, and the UDP port of the NIC's own end."""
        network = self.network(attachment.network)
        site = 0 if attachment.bridge == bridge(self.run_id, network.index, 0) else 1
        return tunnel_end(self.run_id, network.index, 1 - site), self.ports[network.name][site]


def _make(handle: Tunnels) -> None:
    with IPRoute() as ipr:
        for network in handle.networks:
            ports = handle.ports[network.name] = (_free_udp_port(), _free_udp_port())
            for site in (0, 1):
                links.ensure_bridge(bridge(handle.run_id, network.index, site))
                end = tunnel_end(handle.run_id, network.index, site)
                ipr.link("add", ifname=end, kind="vxlan", vxlan_id=VNI, vxlan_local="127.0.0.1",
                         vxlan_port=ports[site], vxlan_learning=0)  # fmt: skip
                index = ipr.link_lookup(ifname=end)[0]
                ipr.fdb("append", ifindex=index, lladdr=ANY_MAC, dst="127.0.0.1", port=ports[1 - site])
                master = ipr.link_lookup(ifname=bridge(handle.run_id, network.index, site))[0]
                ipr.link("set", index=index, mtu=1500, master=master, state="up")
    for command in _firewall_commands():
        subprocess.run([command, "-w", "-I", *_rule(handle.run_id)], check=True, capture_output=True)
        handle.rules.append(command)


def _teardown(handle: Tunnels) -> None:
    for command in handle.rules:
        subprocess.run([command, "-w", "-D", *_rule(handle.run_id)], check=False, capture_output=True)
    links.remove_links(f"{PREFIX}{handle.run_id}", wait=2.0)


def _fdb(operation: str, attachment: Attachment, handle: Tunnels) -> None:
    """Tell the far site's tunnel end where the NIC's MAC lives (or forget it)."""
    far, port = handle.far_end(attachment)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=far)
        if found:
            ipr.fdb(operation, ifindex=found[0], lladdr=attachment.mac, dst="127.0.0.1", port=port)


def _tagged_rules(run_id: str | None) -> list[tuple[str, str]]:
    tag = f"{PREFIX}:{run_id or ''}"
    found = []
    for command in FIREWALL:
        if shutil.which(command):
            listing = subprocess.run([command, "-w", "-S"], capture_output=True, text=True, check=False)
            found += [(command, rule) for rule in listing.stdout.splitlines() if tag in rule]
    return found


@hookimpl
def herd_register_network_providers(register: Callable[[NetworkProviderInfo], None]) -> None:
    register(NetworkProviderInfo(NAME, "two sites per network, joined by VXLAN over the loopback",
                                 frozenset({NetworkFeature.BLOCK})))  # fmt: skip


@hookimpl
def herd_network_attachment(run_id: str, network: NetworkPlan, nic: NicPlan) -> Attachment:
    return Attachment(
        network=nic.network,
        bridge=bridge(run_id, network.index, nic.machine_index % 2),
        host_link=f"{PREFIX}{run_id}m{nic.machine_index}n{network.index}",
        guest_link=nic.guest_link,
        mac=f"02:74:6e:{network.index:02x}:{nic.machine_index // 256:02x}:{nic.machine_index % 256:02x}",
        addresses=nic.addresses,
    )


@hookimpl
def herd_network_create(run_id: str, networks: tuple[NetworkPlan, ...]) -> Tunnels:
    handle = Tunnels(provider=NAME, run_id=run_id, networks=networks)
    try:
        _make(handle)
    except BaseException:
        _teardown(handle)
        raise
    return handle


@hookimpl
def herd_network_connected(handle: Tunnels, attachment: Attachment) -> None:
    _fdb("append", attachment, handle)


@hookimpl
def herd_network_disconnected(handle: Tunnels, attachment: Attachment) -> None:
    _fdb("del", attachment, handle)


@hookimpl
def herd_network_block(attachment: Attachment, blocked: bool) -> bool:
    links.set_link_state(attachment.host_link, not blocked)
    return True


@hookimpl
def herd_network_teardown(handle: Tunnels) -> None:
    _teardown(handle)


@hookimpl
def herd_run_leftovers(run_id: str) -> list[str]:
    found = [f"link {name}" for name in links.link_names(f"{PREFIX}{run_id}")]
    return found + [f"{command} rule: {rule}" for command, rule in _tagged_rules(run_id)]


@hookimpl
def herd_reap(run_id: str) -> list[str]:
    removed = [f"link {n}" for n in links.link_names(f"{PREFIX}{run_id}") if links.delete_link(n)]
    for command, rule in _tagged_rules(run_id):
        subprocess.run([command, "-w", "-D", *_rule(run_id)], check=False, capture_output=True)
        removed.append(f"{command} rule: {rule}")
    return removed


@hookimpl
def herd_known_runs() -> list[str]:
    return sorted({name[len(PREFIX) :][:RUN_ID_LENGTH] for name in links.link_names(PREFIX)})
