"""sd_notify: the socket on which a machine's systemd says how far it has booted, and the wait for it.

systemd sends its state as `VARIABLE=value` lines, one datagram a message, to the socket that the
variable NOTIFY_SOCKET of its environment names: `READY=1` once it has reached its default target
(herd.target in a machine). systemd-nspawn started with `--notify-ready=yes` forwards that from its
container and first sends `X_NSPAWN_LEADER_PID=<pid>`, the container's init. A backend binds a
`NotifySocket`, gives its `address` to what it starts, and waits for the variables it needs with
`wait_for`, until a deadline or until the process that was to send them exits, which a pidfd tells
at once: no polling, no fixed sleep.
"""

from __future__ import annotations

import selectors
import socket
import time
from pathlib import Path
from types import TracebackType

MESSAGE_SIZE = 4096


class NotifyTimeout(Exception):
    """The deadline passed before the variable waited for was sent."""


class SenderExited(Exception):
    """The process that was to send the variable waited for exited before it did."""


class NotifySocket:
    """A datagram socket for sd_notify messages, and every variable received on it so far."""

    def __init__(self, address: str) -> None:
        """Bind `address`: a path (a socket left there by an earlier boot is replaced) or `@name`, an
        abstract socket, which leaves nothing on disk to clean up."""
        self.address = address
        self.values: dict[str, str] = {}  # the latest value of each variable received
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            if address.startswith("@"):
                self._socket.bind("\0" + address[1:])
            else:
                Path(address).unlink(missing_ok=True)
                self._socket.bind(address)
        except BaseException:
            self._socket.close()
            raise

    def wait_for(self, variable: str, pidfd: int, deadline: float) -> str:
        """The value of `variable`, once a message has set it (at once if one did already).

        Raises `NotifyTimeout` when `deadline` (a `time.monotonic()` time) comes first, and
        `SenderExited` when the process of `pidfd` exits first.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self._socket, selectors.EVENT_READ, "message")
            selector.register(pidfd, selectors.EVENT_READ, "exit")
            while variable not in self.values:
                remaining = deadline - time.monotonic()
                events = selector.select(remaining) if remaining > 0 else []
                if not events:
                    raise NotifyTimeout(f"{variable} was not sent in time")
                exited = False
                for key, _ in events:
                    if key.data == "exit":
                        exited = True
                    else:
                        self._receive()
                if exited and variable not in self.values:
                    raise SenderExited(f"the process that was to send {variable} exited")
        return self.values[variable]

    def _receive(self) -> None:
        message = self._socket.recv(MESSAGE_SIZE).decode(errors="replace")
        for line in message.splitlines():
            name, equals, value = line.partition("=")
            if equals:
                self.values[name] = value

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
