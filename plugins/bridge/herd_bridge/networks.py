"""A run's bridge networks: one Linux bridge per network, let through the host's firewall where it
would drop bridged frames, port forwards through a gateway of herd's own, and their teardown.

A bridge forwards at once (no STP, no forward delay), has no address and no IPv6, so the host gets
no link-local address on it; nothing is routed or NATed. Blocks and impairments act on the host side
of a machine's NIC, whichever backend made it: its egress is what the machine receives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from herd.plugin import Attachment, HerdError, NetworkHandle, NetworkPlan, links
from herd_bridge import names
from herd_bridge.firewall import BridgeRules
from herd_bridge.forward import Forward, Gateway

log = logging.getLogger("herd.bridge")
LINK_CLEANUP_WAIT = 2.0  # seconds the kernel gets to clean up stopped machines' veths


@dataclass(eq=False)
class BridgeNetworks(NetworkHandle):
    """The bridges of one run, their firewall rules, gateways and port forwards."""

    rules: BridgeRules = field(kw_only=True)
    gateways: dict[str, Gateway] = field(default_factory=dict, kw_only=True)  # network: its gateway
    forwards: list[Forward] = field(default_factory=list, kw_only=True)
    lock: threading.Lock = field(default_factory=threading.Lock, kw_only=True, repr=False)

    @classmethod
    def create(cls, provider: str, run_id: str, networks: tuple[NetworkPlan, ...]) -> BridgeNetworks:
        """Make the networks' bridges and let them through the firewall; undone if anything fails."""
        made = cls(provider=provider, run_id=run_id, networks=networks, rules=BridgeRules(run_id))
        try:
            for network in networks:
                bridge = names.bridge_name(run_id, network.index)
                links.ensure_bridge(bridge)
                made.rules.allow(bridge)
        except BaseException:
            made.teardown()
            raise
        return made

    def network(self, name: str) -> NetworkPlan:
        return next(network for network in self.networks if network.name == name)

    def forward(self, attachment: Attachment, host_port: int, guest_port: int) -> int:
        """Forward 127.0.0.1:`host_port` to the machine's `guest_port` through the gateway of its
        network (made at the network's first forward); return the host port."""
        address = attachment.addresses[0].split("/")[0]
        with self.lock:
            gateway = self.gateways.get(attachment.network)
            if gateway is None:
                gateway = self.gateways[attachment.network] = Gateway(self._gateway_attachment(attachment))
            forward = Forward(host_port, address, guest_port, gateway)
            self.forwards.append(forward)
        return forward.host_port

    def _gateway_attachment(self, nic: Attachment) -> Attachment:
        """The gateway's own NIC on a machine's network: its own name, MAC and address, IPv4 only."""
        network = self.network(nic.network)
        return Attachment(
            network=network.name,
            bridge=nic.bridge,
            host_link=names.gateway_link_name(self.run_id, network.index),
            guest_link="eth0",
            mac=names.mac_address(network.index, names.GATEWAY_MAC_INDEX),
            addresses=(f"{network.gateway}/{network.subnet.prefixlen}",),
        )

    def teardown(self) -> None:
        """Stop the forwards, take the gateways, firewall rules and bridges away, then wait for
        the run's other links to go (or delete them). Every step is tried; the first error is
        raised at the end."""
        errors: list[str] = []

        def step(what: str, action: Callable[[], object]) -> None:
            try:
                action()
            except Exception as error:
                errors.append(f"{what}: {error}")

        for forward in self.forwards:
            step(f"stopping the forward of host port {forward.host_port}", forward.close)
        self.forwards.clear()
        for gateway in self.gateways.values():
            step(f"removing the gateway {gateway.attachment.host_link}", gateway.close)
        self.gateways.clear()
        step("removing firewall rules", self.rules.remove_all)
        for network in self.networks:
            bridge = names.bridge_name(self.run_id, network.index)
            step(f"deleting bridge {bridge}", partial(links.delete_link, bridge))
        step("deleting leftover links", self._remove_leftover_links)
        if errors:
            raise HerdError("; ".join(errors))

    def _remove_leftover_links(self) -> None:
        for name in links.remove_links(names.run_prefix(self.run_id), wait=LINK_CLEANUP_WAIT):
            log.info("teardown: deleted link %s, which outlived its machine", name)
