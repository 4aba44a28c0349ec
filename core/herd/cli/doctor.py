"""`herd doctor`: whether this host can run herd's machines, and the fix for each missing piece."""

from __future__ import annotations

import os
from collections.abc import Iterator

from herd.declare.netspec import DEFAULT_PROVIDER
from herd.hooks.manager import Plugins
from herd.hooks.types import BackendInfo, Capability, HostCheck
from herd.host import limits
from herd.linux.cgroups import hierarchies


def _inotify_check(machines: int) -> HostCheck | None:
    plan = limits.inotify_plan(machines)
    if plan is None:
        return None
    name = f"inotify instances for {machines} containers"
    detail = f"fs.inotify.max_user_instances={plan.limit}, {plan.in_use} in use, about {plan.needed} needed"
    if not plan.short:
        return HostCheck(name, True, detail)
    if os.access(limits.INOTIFY_INSTANCES, os.W_OK):
        return HostCheck(name, True, f"{detail}: herd raises it to {plan.raise_to} when such a run starts")
    return HostCheck(
        name, False, f"{detail}: boots would stall, and herd cannot raise it here",
        f"sysctl -w fs.inotify.max_user_instances={plan.raise_to}",
    )  # fmt: skip


def core_checks(machines: int = 2) -> Iterator[HostCheck]:
    root = os.geteuid() == 0
    yield HostCheck(
        "root", root, "running as root" if root else "not root", None if root else "run herd as root (sudo)"
    )
    found = hierarchies()
    yield HostCheck(
        "cgroups",
        bool(found),
        ", ".join(map(str, found)) or "no cgroup2 or systemd hierarchy mounted",
        None if found else "mount -t cgroup2 none /sys/fs/cgroup",
    )
    if (inotify := _inotify_check(machines)) is not None:
        yield inotify


def confinement(info: BackendInfo) -> str:
    """One line on whether a backend's machines can touch the host."""
    if Capability.CONFINED in info.capabilities:
        return "confined: root in its machines is not root on the host, and every machine has limits"
    return (
        "NOT CONFINED: root in its machines may be root on the host and reach its files and settings; "
        "run only tests you trust on it"
    )


def confinement_check(info: BackendInfo) -> HostCheck:
    confined = Capability.CONFINED in info.capabilities
    return HostCheck("confinement", True, confinement(info), warning=not confined)


def providers_check(plugins: Plugins) -> HostCheck:
    """Whether a network provider is installed: networks need one, `bridge` for those that name none."""
    if not plugins.providers:
        return HostCheck(
            "network providers",
            False,
            "none installed: a run cannot make its machines' networks",
            f"pip install herd-{DEFAULT_PROVIDER}",
        )
    return HostCheck("network providers", True, ", ".join(sorted(plugins.providers)))


def all_checks(plugins: Plugins, machines: int = 2) -> Iterator[tuple[str, HostCheck]]:
    """(section, check) for the core, every installed network provider and every installed
    backend, for a test of `machines`."""
    for check in core_checks(machines):
        yield "herd", check
    plugins.load_all()
    yield "herd", providers_check(plugins)
    for name, provider in sorted(plugins.providers.items()):
        for check in provider.host_checks():
            yield f"network provider {name}", check
    for name, info in sorted(plugins.backends.items()):
        yield f"backend {name}", confinement_check(info)
        for check in info.host_checks():
            yield f"backend {name}", check
