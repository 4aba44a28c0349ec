"""`herd doctor`: whether this host can run herd's machines, and the fix for each missing piece."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from herd.errors import HerdError
from herd.hooks.manager import Plugins
from herd.hooks.types import BackendInfo, Capability, HostCheck
from herd.host import limits
from herd.linux import links
from herd.linux.cgroups import hierarchies
from herd.network import firewall


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


def _netem_check() -> HostCheck:
    """Whether links can be delayed and made lossy; informative: most tests need neither."""
    available = links.netem_available()
    if available is None:
        return HostCheck(
            "netem", True, "unknown (no /proc/config.gz): machine.impair() says so if it is missing"
        )
    if available:
        return HostCheck(
            "netem", True, "the kernel has netem: machine.impair() can delay, jitter, drop and limit"
        )
    return HostCheck(
        "netem",
        True,
        "the kernel has no netem (CONFIG_NET_SCH_NETEM): machine.impair() can only limit the rate, "
        "and tests that declare a delay or loss are refused",
        warning=True,
    )


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
    yield _bridge_check()
    yield from _firewall_checks()
    if (inotify := _inotify_check(machines)) is not None:
        yield inotify
    yield _netem_check()


def _bridge_check() -> HostCheck:
    name = f"herdcheck{os.getpid() % 100000}"
    try:
        links.ensure_bridge(name)
    except Exception as error:  # any failure means bridges cannot be made here
        return HostCheck(
            "bridges", False, f"cannot create a bridge: {error}", "modprobe bridge (and run as root)"
        )
    links.delete_link(name)
    return HostCheck("bridges", True, "a Linux bridge can be created")


def _firewall_checks() -> Iterator[HostCheck]:
    commands = firewall.filtering_commands()
    if not commands:
        yield HostCheck("firewall", True, "bridged frames do not pass iptables (br_netfilter is not loaded)")
        return
    for command in commands:
        path = shutil.which(command)
        if path is None:
            yield HostCheck(
                "firewall",
                False,
                f"br_netfilter passes bridged frames to {command}, and the {command} command is missing",
                "apt-get install iptables",
            )
            continue
        try:
            filters = firewall.forward_chain_filters(command)
        except HerdError as error:
            yield HostCheck("firewall", False, str(error), "apt-get install iptables")
            continue
        detail = (
            "its FORWARD chain filters: herd adds an ACCEPT rule per bridge of a run"
            if filters
            else "its FORWARD chain accepts everything"
        )
        yield HostCheck("firewall", True, f"bridged frames pass {command}; {detail}")


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


def all_checks(plugins: Plugins, machines: int = 2) -> Iterator[tuple[str, HostCheck]]:
    """(section, check) for the core and every installed backend, for a test of `machines`."""
    for check in core_checks(machines):
        yield "herd", check
    plugins.load_all()
    for name, info in sorted(plugins.backends.items()):
        yield f"backend {name}", confinement_check(info)
        for check in info.host_checks():
            yield f"backend {name}", check
