"""Port forwards: a service in a machine, reachable on the host's loopback.

The host itself never gets an address on a test network (a test's 192.168.1.0/24 could be the
host's own LAN) and nothing is routed or NATed. Instead each network that carries a forward gets a
gateway: a network namespace of herd's own, plugged into the network's bridge at the subnet's last
host address. herd listens on 127.0.0.1:<host port>; for every connection it opens a socket inside
the gateway's namespace to the machine's address, and copies bytes both ways. This works the same
for every backend whose machines sit on the bridge, containers and VMs alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass, field

from herd.plugin import Attachment, HerdError, libc, links

log = logging.getLogger("herd.bridge.forward")
CONNECT_TIMEOUT = 10.0


class Gateway:
    """herd's foothold on one network: a namespace with one address on the bridge, no routes."""

    def __init__(self, attachment: Attachment) -> None:
        self.attachment = attachment
        self.netns = links.new_netns()
        try:
            links.loopback_up(self.netns)
            links.plug_veth(self.netns, attachment)
        except BaseException:
            os.close(self.netns)
            raise

    def connect(self, address: str, port: int) -> socket.socket:
        """A TCP connection from the gateway to `address`:`port` on its network."""
        outcome: dict[str, object] = {}

        def open_socket() -> None:
            try:
                libc.check(
                    libc.libc.setns(self.netns, libc.CLONE_NEWNET), "cannot enter herd's gateway namespace"
                )
                outcome["socket"] = socket.create_connection((address, port), timeout=CONNECT_TIMEOUT)
            except OSError as error:
                outcome["error"] = error

        thread = threading.Thread(target=open_socket, name="herd-gateway")  # it ends, with its netns
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        connection = outcome["socket"]
        assert isinstance(connection, socket.socket)
        connection.settimeout(None)
        return connection

    def close(self) -> None:
        os.close(self.netns)
        links.delete_link(self.attachment.host_link)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes from `source` to `sink` until `source` ends; then end `sink`'s sending side."""
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 16):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@dataclass
class Forward:
    """127.0.0.1:`host_port` on the host to `address`:`guest_port` through `gateway`; a
    `host_port` of 0 takes a free port, which `host_port` then holds."""

    host_port: int
    address: str
    guest_port: int
    gateway: Gateway
    listener: socket.socket = field(init=False)
    _connections: set[socket.socket] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind(("127.0.0.1", self.host_port))
        except OSError as error:
            self.listener.close()
            raise HerdError(f"cannot forward host port {self.host_port}: {error.strerror}") from None
        self.host_port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, name=f"herd-forward-{self.host_port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the forward is over
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self.gateway.connect(self.address, self.guest_port)
        except OSError as error:
            log.warning(
                "forward of host port %s to %s:%s: %s", self.host_port, self.address, self.guest_port, error
            )
            client.close()
            return
        with self._lock:
            self._connections |= {client, upstream}
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        with self._lock:
            self._connections -= {client, upstream}
        client.close()
        upstream.close()

    def close(self) -> None:
        """Stop listening and cut the connections still open."""
        self.listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
