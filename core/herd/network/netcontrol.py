"""What a run does to its networks while machines run: cut links, impair them, forward ports, plug
machines in and out.

Everything here works on the host's side of a machine's NIC (the link herd named, on the bridge),
so it works the same for every backend; only plugging a machine in or out asks the backend, through
`herd_network_attach`/`herd_network_detach`. What the script asked for (and the test declared) is
remembered per machine and network, and applied again when the machine's link there is new: when it
boots anew, and when it is connected again to a network it was disconnected from. A block or an
impairment ends only with `unblock`/`unimpair`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from herd.declare.netspec import Impairment, parse_impairment
from herd.errors import HerdError
from herd.linux import links
from herd.network import plan as network
from herd.network.forward import Forward, Gateway

if TYPE_CHECKING:
    from herd.hooks.types import Attachment, MachineHandle
    from herd.report.log import RunLog


class NetworkControl:
    """The run's networks as the script changes them."""

    def __init__(self, plan: network.RunNetworks, run_id: str, log: RunLog) -> None:
        self.plan = plan
        self.run_id = run_id
        self.log = log
        self.joined = {machine: list(networks) for machine, networks in plan.joined.items()}
        self.blocked: set[tuple[str, str]] = set()
        self.impairments: dict[tuple[str, str], Impairment] = {
            (machine, net): impairment
            for machine, by_net in plan.impairments.items()
            for net, impairment in by_net.items()
        }
        self.gateways: dict[str, Gateway] = {}
        self.forwards: dict[int, Forward] = {}
        self._lock = threading.Lock()

    # -- what a machine is on -----------------------------------------------------------------

    def attachments(self, machine: str) -> tuple[Attachment, ...]:
        """The NICs a machine has (or gets at its next boot)."""
        return tuple(self.plan.attachments[machine][net] for net in self.joined[machine])

    def hosts_file(self, machine: str) -> str:
        return self.plan.hosts_file(machine, {m: tuple(n) for m, n in self.joined.items()})

    def networks_of(self, machine: str, network: str | None) -> list[str]:
        """`network`, checked to be one the machine is on, or all of them when None."""
        if network is None:
            return list(self.joined[machine])
        if network not in self.joined[machine]:
            on = ", ".join(self.joined[machine]) or "none"
            raise HerdError(f"machine {machine} is not on network {network!r} (it is on: {on})")
        return [network]

    # -- after a boot ------------------------------------------------------------------------

    def machine_booted(self, machine: str) -> None:
        """Apply again what the script set on the machine's links: they are new after a boot."""
        for net in self.joined[machine]:
            self._reapply(machine, net)

    def _reapply(self, machine: str, net: str) -> None:
        link = self.plan.attachments[machine][net].host_link
        if (machine, net) in self.blocked:
            links.set_link_state(link, False)
        if (impairment := self.impairments.get((machine, net))) is not None:
            links.impair(link, impairment.delay, impairment.jitter, impairment.loss, impairment.rate)

    # -- cutting and impairing ---------------------------------------------------------------

    def block(self, machine: str, network: str | None, blocked: bool) -> None:
        for net in self.networks_of(machine, network):
            links.set_link_state(self.plan.attachments[machine][net].host_link, not blocked)
            (self.blocked.add if blocked else self.blocked.discard)((machine, net))
            self.log.info(f"{'blocked' if blocked else 'unblocked'} on {net}", machine=machine)

    def impair(self, machine: str, network: str | None, values: dict[str, Any]) -> None:
        problems: list[str] = []
        impairment = parse_impairment(values, problems.append)
        if impairment is None:
            raise HerdError(f"machine {machine}: impair(): {'; '.join(problems)}")
        for net in self.networks_of(machine, network):
            link = self.plan.attachments[machine][net].host_link
            links.impair(link, impairment.delay, impairment.jitter, impairment.loss, impairment.rate)
            self.impairments[(machine, net)] = impairment
            self.log.info(f"impaired on {net}: {_describe(impairment)}", machine=machine)

    def unimpair(self, machine: str, network: str | None) -> None:
        for net in self.networks_of(machine, network):
            links.clear_impairment(self.plan.attachments[machine][net].host_link)
            self.impairments.pop((machine, net), None)
            self.log.info(f"no longer impaired on {net}", machine=machine)

    # -- port forwards -----------------------------------------------------------------------

    def forward_port(self, machine: str, host_port: int, guest_port: int, network: str | None) -> int:
        """Forward 127.0.0.1:`host_port` (0: a free port) to the machine's `guest_port`; return
        the host port."""
        net = self.networks_of(machine, network)[0] if self.joined[machine] else None
        if net is None:
            raise HerdError(f"machine {machine} is on no network: no port can be forwarded to it")
        with self._lock:
            if host_port in self.forwards:
                raise HerdError(f"host port {host_port} is forwarded already")
            if net not in self.gateways:
                self.gateways[net] = Gateway(self._gateway_attachment(net))
            address = self.plan.address_of(machine, net)
            forward = Forward(host_port, address, guest_port, self.gateways[net])
            self.forwards[forward.host_port] = forward
        self.log.info(
            f"127.0.0.1:{forward.host_port} on the host forwards to port {guest_port} ({address})",
            machine=machine,
        )
        return forward.host_port

    def _gateway_attachment(self, net: str) -> Attachment:
        plan = self.plan.network(net)
        # any machine's NIC on this network gives the bridge; the gateway takes its own name and address
        template = next(iter(self.plan.attachments.values()))[net]
        return replace(
            template,
            host_link=network.gateway_link_name(self.run_id, plan.index),
            guest_link="eth0",
            mac=network.mac_address(plan.index, 0xFFFF),
            addresses=(f"{plan.gateway}/{plan.subnet.prefixlen}",),
        )

    # -- plugging in and out -----------------------------------------------------------------

    def connect(
        self,
        machine: str,
        net: str,
        handle: MachineHandle,
        attach: Callable[[MachineHandle, Attachment], object],
        push_hosts: Callable[[str], None],
    ) -> None:
        if net not in self.plan.attachments[machine]:
            names = ", ".join(n.name for n in self.plan.networks)
            raise HerdError(f"network {net!r} is not one of the test's (networks: {names})")
        if net in self.joined[machine]:
            raise HerdError(f"machine {machine} is on network {net!r} already")
        attachment = self.plan.attachments[machine][net]
        attach(handle, attachment)
        self.joined[machine].append(net)
        self._reapply(machine, net)
        self._names_changed(push_hosts)
        kept = ["blocked"] if (machine, net) in self.blocked else []
        if (impairment := self.impairments.get((machine, net))) is not None:
            kept.append(f"impaired: {_describe(impairment)}")
        still = f" (still {'; '.join(kept)})" if kept else ""
        self.log.info(f"connected to {net} as {attachment.addresses[0]}{still}", machine=machine)

    def disconnect(
        self,
        machine: str,
        net: str,
        handle: MachineHandle,
        detach: Callable[[MachineHandle, Attachment], object],
        push_hosts: Callable[[str], None],
    ) -> None:
        self.networks_of(machine, net)
        detach(handle, self.plan.attachments[machine][net])
        self.joined[machine].remove(net)  # its block and impairment stay, for `connect`
        self._names_changed(push_hosts)
        self.log.info(f"disconnected from {net}", machine=machine)

    def _names_changed(self, push_hosts: Callable[[str], None]) -> None:
        for machine in self.joined:
            push_hosts(machine)

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the forwards and take the gateways away (the bridges go after)."""
        for forward in self.forwards.values():
            forward.close()
        self.forwards.clear()
        for gateway in self.gateways.values():
            gateway.close()
        self.gateways.clear()


def _describe(impairment: Impairment) -> str:
    parts: Iterable[str] = (
        f"delay {impairment.delay:g} ms" if impairment.delay else "",
        f"jitter {impairment.jitter:g} ms" if impairment.jitter else "",
        f"loss {impairment.loss:g} %" if impairment.loss else "",
        f"rate {impairment.rate} bit/s" if impairment.rate else "",
    )
    return ", ".join(part for part in parts if part) or "nothing"
