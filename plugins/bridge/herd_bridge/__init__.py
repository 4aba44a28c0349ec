"""herd-bridge: the network provider `bridge`, which makes every network that names no other.

Each network of a run is a Linux bridge on the host, named after the run; each machine's NIC on it
is a veth or tap that the machine's backend plugs into the bridge (`herd_network_attach`, and the
attachments of `herd_machine_start`). The host has no address on a test network and routes
nothing: port forwards go through a gateway namespace of herd's own on the network, blocks and
impairments act on the host side of a machine's NIC. Where a Docker engine's firewall would drop
bridged frames, an ACCEPT rule per bridge lets them through. Everything is named after the run, so
what a killed run left is found and removed (`herd clean`, or the next run).

The netlink work goes through herd's link helper (`herd.plugin.links`), which backends share.
"""

from __future__ import annotations

from collections.abc import Callable

from herd.plugin import (
    Attachment,
    Impairment,
    NetworkFeature,
    NetworkPlan,
    NetworkProviderInfo,
    NicPlan,
    hookimpl,
    links,
)
from herd_bridge import checks, names, residue
from herd_bridge.networks import BridgeNetworks

NAME = "bridge"


@hookimpl
def herd_register_network_providers(register: Callable[[NetworkProviderInfo], None]) -> None:
    register(
        NetworkProviderInfo(
            name=NAME,
            description="Linux bridges on this host; port forwards from 127.0.0.1, impairment by tc",
            features=frozenset(NetworkFeature),
            host_checks=checks.host_checks,
            impairment_problem=checks.impairment_problem,
        )
    )


@hookimpl
def herd_network_attachment(run_id: str, network: NetworkPlan, nic: NicPlan) -> Attachment:
    return Attachment(
        network=nic.network,
        bridge=names.bridge_name(run_id, network.index),
        host_link=names.host_link_name(run_id, nic.machine_index, network.index),
        guest_link=nic.guest_link,
        mac=names.mac_address(network.index, nic.machine_index + 1),
        addresses=nic.addresses,
    )


@hookimpl
def herd_network_create(run_id: str, networks: tuple[NetworkPlan, ...]) -> BridgeNetworks:
    return BridgeNetworks.create(NAME, run_id, networks)


@hookimpl
def herd_network_block(attachment: Attachment, blocked: bool) -> bool:
    links.set_link_state(attachment.host_link, not blocked)
    return True


@hookimpl
def herd_network_impair(attachment: Attachment, impairment: Impairment | None) -> bool:
    if impairment is None:
        links.clear_impairment(attachment.host_link)
    else:
        links.impair(
            attachment.host_link, impairment.delay, impairment.jitter, impairment.loss, impairment.rate
        )
    return True


@hookimpl
def herd_network_forward(
    handle: BridgeNetworks, attachment: Attachment, host_port: int, guest_port: int
) -> int:
    return handle.forward(attachment, host_port, guest_port)


@hookimpl
def herd_network_teardown(handle: BridgeNetworks) -> None:
    handle.teardown()


@hookimpl
def herd_run_leftovers(run_id: str) -> list[str]:
    return residue.leftovers(run_id)


@hookimpl
def herd_reap(run_id: str) -> list[str]:
    return residue.reap(run_id)


@hookimpl
def herd_known_runs() -> list[str]:
    return sorted(residue.known_runs())
