"""Network namespaces, veth pairs, taps, bridges and queueing disciplines: the Linux primitives of
herd's networks (all netlink work by pyroute2, never by shelling out).

Backends plug their machines' NICs in with these (`plug_veth`, `create_tap`), and network providers
make their networks with them (`ensure_bridge`, `set_link_state`, `impair`); neither needs the other
for it. The netlink operations run in herd's link helper (`herd.linux.linkd`), one process of its own
per herd process, started on first use or early with `start_helper()`: it imports pyroute2 on
another core while herd starts.

A machine's network namespace is created here, by a short-lived thread that unshares its own: the
namespace lives as long as someone holds the returned descriptor or a process runs in it, so it needs
no bind mount under /run/netns and vanishes, with its veths, when the machine and herd are gone.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

from herd.errors import HerdError, LinkError
from herd.linux import linkd
from herd.linux.libc import CLONE_NEWNET, check, libc


class NicEnds(Protocol):
    """What `plug_veth` makes of a NIC: the host side `host_link` on the bridge `bridge`, and the
    interface `guest_link` in the machine with `mac` and `addresses` (CIDR). herd's `Attachment` is
    one."""

    @property
    def bridge(self) -> str: ...
    @property
    def host_link(self) -> str: ...
    @property
    def guest_link(self) -> str: ...
    @property
    def mac(self) -> str: ...
    @property
    def addresses(self) -> tuple[str, ...]: ...


class _Helper:
    """The connection to the link helper: one request at a time, restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen(
            [sys.executable, "-I", linkd.__file__, str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,  # Ctrl-C reaches herd, which then tears down in order
        )
        theirs.close()
        return ours

    def start(self) -> None:
        with self._lock:
            if self._connection is None or (self._process is not None and self._process.poll() is not None):
                self._connection = self._start()

    def call(self, operation: str, fds: tuple[int, ...] = (), **arguments: Any) -> Any:
        self.start()
        with self._lock:
            assert self._connection is not None
            try:
                socket.send_fds(
                    self._connection, [json.dumps({"op": operation, **arguments}).encode()], list(fds)
                )
                data = self._connection.recv(linkd.MAX_MESSAGE)
            except OSError as error:
                data = b""
                reason = str(error)
            else:
                reason = "it exited"
            if not data:
                raise HerdError(f"herd's link helper failed during {operation}: {reason}")
        answer = json.loads(data)
        if "error" in answer:
            raise LinkError(f"{operation}: {answer['error']}", answer.get("errno"))
        return answer["result"]


_helper = _Helper()


def start_helper() -> None:
    """Start the link helper now, so that it is ready when the first link is needed."""
    _helper.start()


def new_netns() -> int:
    """A new, empty network namespace; returns a descriptor that keeps it alive.

    Its loopback is still down: see `loopback_up`.
    """
    outcome: dict[str, Any] = {}

    def create() -> None:
        try:
            check(libc.unshare(CLONE_NEWNET), "cannot create a network namespace")
        except OSError as error:
            outcome["error"] = error
            return
        outcome["fd"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    thread = threading.Thread(target=create, name="herd-netns")  # ends, with its namespace change
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return int(outcome["fd"])


def ensure_bridge(name: str) -> None:
    """Create the bridge `name` unless it exists: it forwards at once (no STP, no forward delay)
    and has no host address."""
    _helper.call("ensure_bridge", name=name)


def delete_link(name: str) -> bool:
    """Delete a link by name; False when it was already gone."""
    return bool(_helper.call("delete_link", name=name))


def link_names(prefix: str) -> list[str]:
    """Names of the host's links that start with `prefix`."""
    return list(_helper.call("link_names", prefix=prefix))


def loopback_up(netns: int) -> None:
    """Bring up the loopback interface of the namespace `netns`."""
    _helper.call("loopback_up", (netns,))


def plug_veth(netns: int, attachment: NicEnds) -> None:
    """A veth pair from the attachment's bridge, which exists, into the namespace `netns`,
    configured and up. A link still named `attachment.host_link` (the veth of the machine's previous
    boot, which the kernel frees a little after the namespace's last process) is deleted first."""
    ends = {
        "bridge": attachment.bridge,
        "host_link": attachment.host_link,
        "guest_link": attachment.guest_link,
        "mac": attachment.mac,
        "addresses": list(attachment.addresses),
    }
    _helper.call("plug_veth", (netns,), attachment=ends)


def create_tap(name: str, bridge: str) -> None:
    """A persistent tap named `name` on `bridge`, which exists, up, for a VM backend to open
    (replacing a stale tap of that name); delete it with `delete_link` when the VM is gone."""
    _helper.call("create_tap", name=name, bridge=bridge)


def set_link_state(name: str, up: bool) -> None:
    """Bring a link up or down (a machine's host-side link: down cuts it off that network)."""
    _helper.call("set_link_state", name=name, up=up)


def netem_available() -> bool | None:
    """Whether the kernel has netem (it delays, jitters and drops packets), as its build
    configuration says; None when that is unknown (no /proc/config.gz)."""
    try:
        with open("/proc/config.gz", "rb") as config:
            text = gzip.decompress(config.read()).decode(errors="replace")
    except OSError:
        return None
    return "CONFIG_NET_SCH_NETEM=y" in text or "CONFIG_NET_SCH_NETEM=m" in text


def impair(
    name: str, delay: float = 0.0, jitter: float = 0.0, loss: float = 0.0, rate: int | None = None
) -> None:
    """Shape what a link sends: netem for `delay` and `jitter` (milliseconds) and `loss` (percent),
    with a `rate` (bits per second) if given; a token bucket for a rate alone. Raises LinkError
    (errno EOPNOTSUPP), saying so, where the kernel has no netem."""
    _helper.call("impair", name=name, delay=delay, jitter=jitter, loss=loss, rate=rate)


def clear_impairment(name: str) -> bool:
    """Take a link's impairment away (its netem or token bucket); False when it had none."""
    return bool(_helper.call("clear_qdisc", name=name))


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
