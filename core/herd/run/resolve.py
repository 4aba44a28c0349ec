"""A test made ready to run: every machine given its backend, and everything that can be checked
before anything starts checked (backend options, images and packages, networks' capacity, device
grants, the script's names). Every problem is reported at once, as a `SpecError` naming the test,
machine and field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from herd.declare import scriptcheck
from herd.errors import HerdError, PluginError, SpecError
from herd.hooks.manager import PLUGINS_GROUP, Plugins
from herd.hooks.types import BackendInfo, Capability, DeviceGrant
from herd.network import links
from herd.network import plan as network
from herd.run.images import check_images
from herd.run.machine import script_attributes

if TYPE_CHECKING:
    from herd.declare.script import ScriptSource
    from herd.declare.spec import TestSpec


@dataclass(frozen=True)
class ResolvedTest:
    """A test ready to run: its spec with a backend named for every machine, each machine's
    backend, and what its device requests stand for."""

    spec: TestSpec
    backends: dict[str, BackendInfo]
    grants: dict[str, tuple[DeviceGrant, ...]]


def resolve_test(
    spec: TestSpec, source: ScriptSource, plugins: Plugins, default_backend: str | None, check_script: bool
) -> ResolvedTest:
    """Resolve the machines' backends and devices and check the test (its script's names too,
    when `check_script`); raises `SpecError` listing every problem found at the step that failed."""
    spec, backends = resolve_backends(spec, plugins, default_backend)
    check_images(spec, plugins, backends)
    problems = network.capacity_problems(spec)
    problems += network.netem_problems(spec, links.netem_available)
    if problems:
        raise SpecError(problems)
    grants = resolve_devices(spec, plugins, backends)
    if check_script and (problems := scriptcheck.check(spec, source, script_attributes())):
        raise SpecError(problems)
    return ResolvedTest(spec, backends, grants)


def with_backends(spec: TestSpec, plugins: Plugins, default: str | None) -> TestSpec:
    """The spec with a backend named for every machine: its own, else the run's default, else
    $HERD_BACKEND, else the installed backend with the highest priority."""
    default = default or os.environ.get("HERD_BACKEND") or None
    if default is None and any(m.backend is None for m in spec.machines):
        try:
            default = plugins.default_backend()
        except PluginError as error:
            raise SpecError([f"test {spec.name!r}: {error}"]) from None
    return spec.with_default_backend(default or "")


def resolve_backends(
    spec: TestSpec, plugins: Plugins, default: str | None
) -> tuple[TestSpec, dict[str, BackendInfo]]:
    """Give every machine a backend, load those backends and validate each machine's options.

    Raises `SpecError` naming the test, machine and field for every problem.
    """
    problems: list[str] = []
    spec = with_backends(spec, plugins, default)
    infos: dict[str, BackendInfo] = {}
    for machine in spec.machines:
        assert machine.backend is not None
        where = f"test {spec.name!r}, machine {machine.name!r}"
        try:
            info = plugins.backend(machine.backend)
        except PluginError as error:
            problems.append(f"{where}, field 'backend': {error}")
            continue
        infos[machine.name] = info
        for problem in info.validate_options(machine.options):
            problems.append(f"{where}, field 'options': {problem}")
        for field_name, problem in info.validate_machine(machine):
            problems.append(f"{where}, field {field_name!r}: {problem}")
        if Capability.SYSTEMD not in info.capabilities:
            for field_name in ("services", "units"):
                if getattr(machine, field_name):
                    problems.append(
                        f"{where}, field {field_name!r}: backend {info.name!r} does not run systemd in its "
                        f"machines (capability 'systemd'), so it cannot start units"
                    )
    if problems:
        raise SpecError(problems)
    return spec, infos


def resolve_devices(
    spec: TestSpec, plugins: Plugins, infos: dict[str, BackendInfo]
) -> dict[str, tuple[DeviceGrant, ...]]:
    """Ask the device plugins (`herd_device_grant`) what each machine's device requests stand for,
    and check that each machine's backend can apply them. Raises `SpecError` for every problem."""
    if not any(m.devices for m in spec.machines):
        return {}
    plugins.load(PLUGINS_GROUP)
    problems: list[str] = []
    grants: dict[str, tuple[DeviceGrant, ...]] = {}
    for machine in spec.machines:
        where = f"test {spec.name!r}, machine {machine.name!r}, field 'devices'"
        found = []
        info = infos[machine.name]
        for request in machine.devices:
            try:
                grant = plugins.hook.herd_device_grant(
                    machine=machine, request=request, capabilities=info.capabilities
                )
            except HerdError as error:
                problems.append(f"{where}: {request!r}: {error}")
                continue
            if grant is None:
                problems.append(f"{where}: no installed plugin grants {request!r} (see `herd plugins`)")
                continue
            for capability, needed in (
                (Capability.DEVICES, grant.nodes or grant.mounts),
                (Capability.PCI, grant.pci_functions),
            ):
                if needed and capability not in info.capabilities:
                    others = ", ".join(plugins.backends_with(capability)) or "none installed"
                    problems.append(
                        f"{where}: {request!r} needs the {capability.value!r} capability, which backend "
                        f"{info.name!r} lacks (backends that have it: {others})"
                    )
            found.append(grant)
        grants[machine.name] = tuple(found)
    if problems:
        raise SpecError(problems)
    return grants
