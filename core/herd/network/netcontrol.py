"""A run's networks while machines run: made by their providers, changed as the script asks.

The core keeps what holds whoever provides a network: which networks each machine is on now (for
its NICs at the next boot and every machine's /etc/hosts), and what the script asked of each NIC
(blocked, impaired) and of the host (ports forwarded). Each request goes to the provider of the
network concerned, through its hooks, with the handle its `herd_network_create` returned; plugging
a machine in or out asks the machine's backend (`herd_network_attach`/`herd_network_detach`).

A NIC's host side is a new link whenever the machine boots and whenever it is connected again, so
its provider hears of it (`herd_network_connected`) and the block and impairment recorded for it
are applied again. A block or an impairment ends only with `unblock`/`unimpair`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from herd.declare.netspec import Impairment, parse_impairment
from herd.errors import HerdError, PluginError
from herd.hooks.types import NetworkFeature, NetworkHandle, NetworkPlan
from herd.network.plan import plan as plan_networks
from herd.network.providers import require

if TYPE_CHECKING:
    from herd.declare.spec import TestSpec
    from herd.hooks.manager import Plugins
    from herd.hooks.types import Attachment, MachineHandle, NicPlan
    from herd.network.plan import RunNetworks
    from herd.report.log import RunLog


class NetworkControl:
    """The run's networks as their providers made them and the script changes them."""

    def __init__(self, plan: RunNetworks, run_id: str, log: RunLog, plugins: Plugins) -> None:
        self.plan = plan
        self.run_id = run_id
        self.log = log
        self.plugins = plugins
        self.handles: dict[str, NetworkHandle] = {}  # provider: its handle, once it made its networks
        self.joined = {machine: list(networks) for machine, networks in plan.joined.items()}
        self.blocked: set[tuple[str, str]] = set()
        self.impairments: dict[tuple[str, str], Impairment] = {
            (machine, net): impairment
            for machine, by_net in plan.impairments.items()
            for net, impairment in by_net.items()
        }
        self.forwarded: set[int] = set()  # host ports
        self._lock = threading.Lock()

    @classmethod
    def planned(cls, spec: TestSpec, run_id: str, log: RunLog, plugins: Plugins) -> NetworkControl:
        """The test's networks planned, each NIC placed by its network's provider; nothing made yet."""

        def place(network: NetworkPlan, nic: NicPlan) -> Attachment:
            hooks = plugins.provider_hooks(network.provider)
            attachment: Attachment | None = hooks.herd_network_attachment(
                run_id=run_id, network=network, nic=nic
            )
            if attachment is None:
                raise PluginError(
                    f"network provider {network.provider!r} did not place {nic.machine} on {network.name}"
                )
            return attachment

        return cls(plan_networks(spec, place), run_id, log, plugins)

    # -- made and taken down by their providers ----------------------------------------------

    def create(self) -> None:
        """Have each provider make its networks of the run (in the background as the run opens;
        no machine boots before this returns)."""
        by_provider: dict[str, list[NetworkPlan]] = {}
        for network in self.plan.networks:
            by_provider.setdefault(network.provider, []).append(network)
        for provider, networks in by_provider.items():
            hooks = self.plugins.provider_hooks(provider)
            handle = hooks.herd_network_create(run_id=self.run_id, networks=tuple(networks))
            if handle is None:
                raise PluginError(f"network provider {provider!r} did not make its networks")
            self.handles[provider] = handle
            if handle.provider != provider:  # its hooks would go to another plugin
                raise PluginError(
                    f"network provider {provider!r} made its networks with a handle of {handle.provider!r}"
                )

    def teardown_steps(self) -> list[tuple[str, Callable[[], object]]]:
        """(what, step) that take each provider's networks down, for the run's teardown."""
        return [
            (
                f"taking down the networks of provider {provider!r}",
                partial(self.plugins.provider_hooks(provider).herd_network_teardown, handle=handle),
            )
            for provider, handle in self.handles.items()
        ]

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

    def _nets(self, machine: str, network: str | None, feature: NetworkFeature) -> list[str]:
        """`networks_of`, each checked to be able to do `feature` before anything is done."""
        nets = self.networks_of(machine, network)
        for net in nets:
            provider = self.plugins.providers[self.plan.network(net).provider]
            require(provider, feature, machine, net)
        return nets

    def _tell(self, hook: str, machine: str, net: str, **arguments: Any) -> Any:
        """Call `hook` of the provider of network `net` for the machine's NIC there; a first-result
        hook must answer."""
        provider = self.plan.network(net).provider
        caller = getattr(self.plugins.provider_hooks(provider), hook)
        answer = caller(
            handle=self.handles[provider], attachment=self.plan.attachments[machine][net], **arguments
        )
        if answer is None and caller.spec.opts.get("firstresult"):
            raise PluginError(f"network provider {provider!r} did not answer {hook} for {machine}")
        return answer

    # -- after a boot, before a stop -----------------------------------------------------------

    def machine_booted(self, machine: str) -> None:
        """Tell the providers of the machine's networks that its NICs are new, and apply again
        what the script set on them."""
        for net in self.joined[machine]:
            self._connected(machine, net)

    def machine_stopped(self, machine: str) -> None:
        """Tell the providers of the machine's networks that its NICs are gone."""
        for net in self.joined[machine]:
            if self.plan.network(net).provider in self.handles:
                self._tell("herd_network_disconnected", machine, net)

    def _connected(self, machine: str, net: str) -> None:
        self._tell("herd_network_connected", machine, net)
        if (machine, net) in self.blocked:
            self._tell("herd_network_block", machine, net, blocked=True)
        if (impairment := self.impairments.get((machine, net))) is not None:
            self._tell("herd_network_impair", machine, net, impairment=impairment)

    # -- cutting and impairing ---------------------------------------------------------------

    def block(self, machine: str, network: str | None, blocked: bool) -> None:
        for net in self._nets(machine, network, NetworkFeature.BLOCK):
            self._tell("herd_network_block", machine, net, blocked=blocked)
            (self.blocked.add if blocked else self.blocked.discard)((machine, net))
            self.log.info(f"{'blocked' if blocked else 'unblocked'} on {net}", machine=machine)

    def impair(self, machine: str, network: str | None, values: dict[str, Any]) -> None:
        problems: list[str] = []
        impairment = parse_impairment(values, problems.append)
        if impairment is None:
            raise HerdError(f"machine {machine}: impair(): {'; '.join(problems)}")
        for net in self._nets(machine, network, NetworkFeature.IMPAIR):
            self._tell("herd_network_impair", machine, net, impairment=impairment)
            self.impairments[(machine, net)] = impairment
            self.log.info(f"impaired on {net}: {_describe(impairment)}", machine=machine)

    def unimpair(self, machine: str, network: str | None) -> None:
        for net in self._nets(machine, network, NetworkFeature.IMPAIR):
            self._tell("herd_network_impair", machine, net, impairment=None)
            self.impairments.pop((machine, net), None)
            self.log.info(f"no longer impaired on {net}", machine=machine)

    # -- port forwards -----------------------------------------------------------------------

    def forward_port(self, machine: str, host_port: int, guest_port: int, network: str | None) -> int:
        """Forward 127.0.0.1:`host_port` (0: a free port) to the machine's `guest_port`; return
        the host port."""
        if not self.joined[machine]:
            raise HerdError(f"machine {machine} is on no network: no port can be forwarded to it")
        net = self._nets(machine, network or self.joined[machine][0], NetworkFeature.FORWARD)[0]
        with self._lock:
            if host_port in self.forwarded:
                raise HerdError(f"host port {host_port} is forwarded already")
            port = int(
                self._tell("herd_network_forward", machine, net, host_port=host_port, guest_port=guest_port)
            )
            self.forwarded.add(port)
        address = self.plan.attachments[machine][net].addresses[0].split("/")[0]
        self.log.info(
            f"127.0.0.1:{port} on the host forwards to port {guest_port} ({address})", machine=machine
        )
        return port

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
        self._connected(machine, net)
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
        attachment = self.plan.attachments[machine][net]
        detach(handle, attachment)
        self.joined[machine].remove(net)  # its block and impairment stay, for `connect`
        self._tell("herd_network_disconnected", machine, net)
        self._names_changed(push_hosts)
        self.log.info(f"disconnected from {net}", machine=machine)

    def _names_changed(self, push_hosts: Callable[[str], None]) -> None:
        for machine in self.joined:
            push_hosts(machine)


def _describe(impairment: Impairment) -> str:
    parts: Iterable[str] = (
        f"delay {impairment.delay:g} ms" if impairment.delay else "",
        f"jitter {impairment.jitter:g} ms" if impairment.jitter else "",
        f"loss {impairment.loss:g} %" if impairment.loss else "",
        f"rate {impairment.rate} bit/s" if impairment.rate else "",
    )
    return ", ".join(part for part in parts if part) or "nothing"
