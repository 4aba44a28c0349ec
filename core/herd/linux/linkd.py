"""herd's link helper: the process that performs herd's netlink operations, with pyroute2.

Importing pyroute2 costs about a tenth of a second of CPU. herd starts this helper first thing, so
that the import happens on another core while herd itself starts and its machines boot; it then
serves every bridge, veth and address operation of the herd process (see `herd.linux.links`, the client).

Each request is one datagram on a SOCK_SEQPACKET socket: a JSON object `{"op": ..., ...}` with, for
operations inside a machine's network namespace, that namespace's descriptor attached. Each answer
is one datagram: `{"result": ...}` or `{"error": "...", "errno": N}`.

Executed as a script (`python -I linkd.py FD`): it imports pyroute2, the standard library and
`herd.linux.libc`, nothing else of herd. pyroute2 is imported when the helper starts serving, so that
herd can import this module for its constants at no cost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from herd.linux.libc import CLONE_NEWNET, check, libc

if TYPE_CHECKING:
    from pyroute2 import IPRoute

MAX_MESSAGE = 1 << 16
IFA_F_NODAD = 0x02


def _setns(fd: int) -> None:
    check(libc.setns(fd, CLONE_NEWNET), "cannot enter a network namespace")


class Links:
    """The operations, on a netlink socket in the host's namespace kept open for the process."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self.iproute = IPRoute
        self.host_netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.ipr = IPRoute()

    @contextlib.contextmanager
    def inside(self, netns: int) -> Iterator[IPRoute]:
        """A netlink socket inside the namespace `netns`; back in the host's afterwards."""
        _setns(netns)
        try:
            with self.iproute() as ipr:
                yield ipr
        finally:
            _setns(self.host_netns)

    @staticmethod
    def index(ipr: IPRoute, name: str) -> int:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise OSError(errno.ENODEV, f"network link {name} does not exist")
        return int(found[0])

    @staticmethod
    def disable_ipv6(name: str) -> None:
        """Keep the host off a test network: no link-local address on herd's host-side links."""
        path = f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"
        with contextlib.suppress(FileNotFoundError), open(path, "w") as sysctl:  # absent: IPv6 is off
            sysctl.write("1")

    def ensure_bridge(self, name: str) -> None:
        if self.ipr.link_lookup(ifname=name):
            return
        self.ipr.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
        self.disable_ipv6(name)
        self.ipr.link("set", index=self.index(self.ipr, name), state="up")

    def delete_link(self, name: str) -> bool:
        from pyroute2.netlink.exceptions import NetlinkError

        found = self.ipr.link_lookup(ifname=name)
        if not found:
            return False
        try:
            self.ipr.link("del", index=found[0])
        except NetlinkError as error:
            if error.code == errno.ENODEV:  # it went away meanwhile
                return False
            raise
        return True

    def link_names(self, prefix: str) -> list[str]:
        names = (link.get("ifname") for link in self.ipr.get_links())
        return sorted(name for name in names if name and name.startswith(prefix))

    def loopback_up(self, netns: int) -> None:
        with self.inside(netns) as ipr:
            ipr.link("set", index=self.index(ipr, "lo"), state="up")

    def plug_veth(self, netns: int, attachment: dict[str, Any]) -> None:
        host_link = attachment["host_link"]
        # A veth of this machine's previous boot may outlive it for a moment: the kernel frees a
        # network namespace's links only after the namespace's last user is gone.
        self.delete_link(host_link)
        peer = {"ifname": attachment["guest_link"], "net_ns_fd": netns, "address": attachment["mac"]}
        self.ipr.link("add", ifname=host_link, kind="veth", peer=peer)
        self.disable_ipv6(host_link)
        bridge = self.index(self.ipr, attachment["bridge"])
        self.ipr.link("set", index=self.index(self.ipr, host_link), master=bridge, state="up")
        with self.inside(netns) as ipr:
            index = self.index(ipr, attachment["guest_link"])
            for address in attachment["addresses"]:
                ip, prefix = address.split("/")
                # no duplicate address detection: the plan made the addresses unique, and DAD
                # would keep an IPv6 address unusable for a second or two after boot
                flags = IFA_F_NODAD if ":" in ip else 0
                ipr.addr("add", index=index, address=ip, prefixlen=int(prefix), flags=flags)
            ipr.link("set", index=index, state="up")

    def create_tap(self, name: str, bridge: str) -> None:
        """A persistent tap on `bridge` for a VM to open by name (replacing a stale one)."""
        self.delete_link(name)
        self.ipr.link("add", ifname=name, kind="tuntap", mode="tap")
        self.disable_ipv6(name)
        bridge_index = self.index(self.ipr, bridge)
        self.ipr.link("set", index=self.index(self.ipr, name), master=bridge_index, state="up")

    def set_link_state(self, name: str, up: bool) -> None:
        self.ipr.link("set", index=self.index(self.ipr, name), state="up" if up else "down")

    def impair(self, name: str, delay: float, jitter: float, loss: float, rate: int | None) -> None:
        """Shape what a link sends: netem for delay, jitter and loss (ms, ms, %), with a rate
        (bit/s) if given; a rate alone is a token bucket (tbf), which every kernel has."""
        from pyroute2.netlink.exceptions import NetlinkError

        self.clear_qdisc(name)
        index = self.index(self.ipr, name)
        if not (delay or jitter or loss):
            if rate is not None:
                burst = max(4096, rate // 8 // 100)  # 10 ms worth, and at least a few packets
                self.ipr.tc(
                    "add",
                    kind="tbf",
                    index=index,
                    handle="1:",
                    rate=f"{rate}bit",
                    burst=burst,
                    latency=400_000,
                )
            return
        parameters: dict[str, Any] = {"delay": int(delay * 1000), "jitter": int(jitter * 1000), "loss": loss}
        if rate is not None:
            parameters["rate"] = f"{rate}bit"
        try:
            self.ipr.tc("add", kind="netem", index=index, handle="1:", **parameters)
        except NetlinkError as error:
            if error.code == errno.ENOENT:
                raise OSError(
                    errno.EOPNOTSUPP,
                    "this kernel has no netem queueing discipline (CONFIG_NET_SCH_NETEM): it cannot delay "
                    "or drop packets; a rate limit alone works",
                ) from None
            raise

    def clear_qdisc(self, name: str) -> bool:
        """Put a link back on its default qdisc; False when it had none of herd's."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self.ipr.tc("del", index=self.index(self.ipr, name), handle="1:", root=True)
        except NetlinkError as error:
            if error.code in (errno.ENOENT, errno.EINVAL):
                return False
            raise
        return True


def serve(connection: socket.socket) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    links = Links()
    operations: dict[str, Callable[..., Any]] = {
        "ensure_bridge": links.ensure_bridge,
        "delete_link": links.delete_link,
        "link_names": links.link_names,
        "loopback_up": links.loopback_up,
        "plug_veth": links.plug_veth,
        "set_link_state": links.set_link_state,
        "create_tap": links.create_tap,
        "impair": links.impair,
        "clear_qdisc": links.clear_qdisc,
    }
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 4)
        except ConnectionResetError:
            return
        if not data:
            return
        try:
            request = json.loads(data)
            operation = operations[request.pop("op")]
            answer: dict[str, Any] = {"result": operation(*fds, **request)}
        except NetlinkError as error:
            answer = {"error": f"netlink: {os.strerror(error.code)}", "errno": error.code}
        except OSError as error:
            answer = {"error": error.strerror or str(error), "errno": error.errno}
        except Exception as error:  # a bad request or a bug: answer it, keep serving
            answer = {"error": f"{type(error).__name__}: {error}", "errno": None}
        finally:
            for fd in fds:
                os.close(fd)
        connection.send(json.dumps(answer).encode())


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
