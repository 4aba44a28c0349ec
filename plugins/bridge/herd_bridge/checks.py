"""What `herd doctor` checks for the bridge networks, and what of an impairment this host cannot
apply."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator

from herd.plugin import HerdError, HostCheck, Impairment, links
from herd_bridge import firewall

NO_NETEM = (
    "a delay or loss needs the kernel's netem (CONFIG_NET_SCH_NETEM), which this host lacks "
    "(see `herd doctor`); a rate alone works"
)


@functools.cache
def _netem() -> bool | None:
    return links.netem_available()


def impairment_problem(impairment: Impairment) -> str | None:
    """Why a declared impairment cannot be applied here: a delay or loss (jitter comes with a delay)
    needs netem. The kernel is asked only for those; when it cannot tell, the impairment is left to
    fail, clearly, at boot."""
    if (impairment.delay or impairment.loss) and _netem() is False:
        return NO_NETEM
    return None


def host_checks() -> Iterator[HostCheck]:
    yield _bridge_check()
    yield from _firewall_checks()
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
