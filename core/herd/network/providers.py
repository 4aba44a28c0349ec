"""The network providers of a test, checked before anything starts: every network's provider is
installed, and can do what the test declares of its networks (impairments, port forwards)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from herd.errors import HerdError, PluginError
from herd.hooks.types import NetworkFeature, NetworkProviderInfo
from herd.network.plan import declared_networks

if TYPE_CHECKING:
    from herd.declare.spec import TestSpec
    from herd.hooks.manager import Plugins

# What a provider without the feature cannot do, as an error says it.
_CANNOT = {
    NetworkFeature.BLOCK: "cut a machine off its network",
    NetworkFeature.IMPAIR: "impair links",
    NetworkFeature.FORWARD: "forward ports",
}


def lacking(info: NetworkProviderInfo, feature: NetworkFeature) -> str | None:
    """Why a network of provider `info` cannot do `feature` (None when it can)."""
    if feature in info.features:
        return None
    return f"its provider {info.name!r} cannot {_CANNOT[feature]}"


def require(info: NetworkProviderInfo, feature: NetworkFeature, machine: str, network: str) -> None:
    """Raise `HerdError` when network `network` (provider `info`) cannot do `feature`."""
    if (problem := lacking(info, feature)) is not None:
        raise HerdError(f"machine {machine}: network {network!r}: {problem}")


def provider_problems(spec: TestSpec, plugins: Plugins) -> list[str]:
    """Every problem of the test's networks with their providers, each naming the test and the
    network: a provider that is not installed (one line for all its networks), an impairment or
    a port forward that a network's provider cannot apply."""
    infos: dict[str, NetworkProviderInfo] = {}  # network: its provider
    missing: dict[str, list[str]] = {}  # the error: the networks it concerns
    for network in declared_networks(spec):
        try:
            infos[network.name] = plugins.provider(network.provider)
        except PluginError as error:
            missing.setdefault(str(error), []).append(network.name)
    problems = [
        f"test {spec.name!r}, network{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}: {error}"
        for error, names in missing.items()
    ]
    for machine in spec.machines:
        where = f"test {spec.name!r}, machine {machine.name!r}"
        for nic in machine.nics:
            info = infos.get(nic.network)
            if info is None or nic.impairment is None:
                continue
            problem = lacking(info, NetworkFeature.IMPAIR) or info.impairment_problem(nic.impairment)
            if problem is not None:
                problems.append(f"{where}, field 'networks': network {nic.network!r}: {problem}")
        first = machine.nics[0].network if machine.nics else None
        if (
            machine.forward_ports
            and first in infos
            and (lacks := lacking(infos[first], NetworkFeature.FORWARD))
        ):
            problems.append(f"{where}, field 'forward_ports': network {first!r}: {lacks}")
    return problems
