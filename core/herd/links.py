"""Bridges, veth pairs and network namespaces, made with pyroute2 (never by shelling out to `ip`).

A machine's network namespace is created by a short-lived thread that unshares its own: the
namespace lives as long as someone holds the returned descriptor or a process runs in it, so it needs
no bind mount under /run/netns and vanishes, with its veths, when the machine and herd are gone.
Netlink sockets inside a namespace are opened the same way, from a thread that joined it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from herd.backend import Attachment

if TYPE_CHECKING:
    from pyroute2 import IPRoute

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


def _iproute() -> IPRoute:
    from pyroute2 import IPRoute  # imported on first use: it takes a tenth of a second

    return IPRoute()


def _in_thread(function: Callable[[], T]) -> T:
    """Run `function` in a new thread, which may change its network namespace and then ends."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=run, name="herd-netns")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _link_index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise OSError(f"network link {name} does not exist")
    return int(found[0])


def _disable_ipv6(name: str) -> None:
    """Keep the host off a test network: no link-local address on herd's host-side links."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as sysctl:
            sysctl.write("1")
    except FileNotFoundError:  # IPv6 is off on this host
        pass


def new_netns() -> int:
    """A new, empty network namespace; returns a descriptor that keeps it alive.

    Its loopback is still down: an init system brings it up, as systemd does when it boots.
    """

    def create() -> int:
        _check(_libc.unshare(CLONE_NEWNET), "cannot create a network namespace")
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    return _in_thread(create)


_bridges_lock = threading.Lock()


def ensure_bridge(name: str) -> None:
    """Create the bridge `name` unless it exists: one that forwards at once (no STP, no forward
    delay) and has no host address. Safe to call from several threads."""
    with _bridges_lock, _iproute() as ipr:
        if ipr.link_lookup(ifname=name):
            return
        ipr.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
        _disable_ipv6(name)
        ipr.link("set", index=_link_index(ipr, name), state="up")


def delete_link(name: str) -> bool:
    """Delete a link by name; False when it was already gone."""
    from pyroute2.netlink.exceptions import NetlinkError

    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as error:
            if error.code == errno.ENODEV:  # it went away meanwhile
                return False
            raise
        return True


def remove_links(prefix: str, wait: float) -> list[str]:
    """Wait up to `wait` seconds for the links named `prefix…` to go, then delete what is left.

    The veths of a network namespace vanish shortly after its last user is gone, once the kernel
    has cleaned the namespace up; waiting for that is cheaper than deleting them one by one.
    Returns the names that had to be deleted.
    """
    deadline = time.monotonic() + wait
    pause = 0.002
    while (left := link_names(prefix)) and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return [name for name in left if delete_link(name)]


def link_names(prefix: str) -> list[str]:
    """Names of the host's links that start with `prefix`."""
    with _iproute() as ipr:
        names = (link.get("ifname") for link in ipr.get_links())
        return sorted(name for name in names if name and name.startswith(prefix))


def _configure_in(netns: int, configure: Callable[[IPRoute], None]) -> None:
    """Run `configure` with a netlink socket inside the namespace `netns`."""

    def run() -> None:
        _check(_libc.setns(netns, CLONE_NEWNET), "cannot enter the machine's network namespace")
        with _iproute() as ipr:
            configure(ipr)

    _in_thread(run)


def loopback_up(netns: int) -> None:
    """Bring up the loopback interface of the namespace `netns`."""
    _configure_in(netns, lambda ipr: ipr.link("set", index=_link_index(ipr, "lo"), state="up"))


def plug_veth(netns: int, attachment: Attachment) -> None:
    """A veth pair from the attachment's bridge into the namespace `netns`, configured and up.

    Creates the bridge if the run has not made it yet, so that a machine can plug in while the
    run's network setup is still going on.
    """
    ensure_bridge(attachment.bridge)
    with _iproute() as ipr:
        ipr.link(
            "add",
            ifname=attachment.host_link,
            kind="veth",
            peer={"ifname": attachment.guest_link, "net_ns_fd": netns, "address": attachment.mac},
        )
        _disable_ipv6(attachment.host_link)
        ipr.link(
            "set",
            index=_link_index(ipr, attachment.host_link),
            master=_link_index(ipr, attachment.bridge),
            state="up",
        )

    def configure(ipr: IPRoute) -> None:
        index = _link_index(ipr, attachment.guest_link)
        for address in attachment.addresses:
            ip, prefix = address.split("/")
            ipr.addr("add", index=index, address=ip, prefixlen=int(prefix))
        ipr.link("set", index=index, state="up")

    _configure_in(netns, configure)
