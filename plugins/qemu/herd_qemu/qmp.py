"""A small client of the QEMU Machine Protocol, over a socket herd handed QEMU at start.

QMP is a line of JSON per message: a greeting, then replies to commands in order, with
asynchronous events (RESET, SHUTDOWN...) between them.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from typing import Any

from herd.plugin import MachineError

EVENT_SLICE = 0.1  # seconds `take_events` holds the monitor's lock at a time


class QMP:
    def __init__(self, connection: socket.socket, machine: str) -> None:
        self.machine = machine
        self._file = connection.makefile("rwb", buffering=0)
        self._connection = connection
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self._read()  # the greeting
        self.command("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise MachineError(f"machine {self.machine}: QEMU closed its monitor (it exited)")
        message: dict[str, Any] = json.loads(line)
        return message

    def command(self, name: str, **arguments: Any) -> Any:
        """Run a QMP command and return its result; errors become MachineError."""
        request: dict[str, Any] = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        with self._lock:
            try:
                self._file.write(json.dumps(request).encode() + b"\n")
            except OSError as error:
                raise MachineError(f"machine {self.machine}: QEMU's monitor is gone: {error}") from None
            while True:
                message = self._read()
                if "event" in message:
                    self.events.append(message)
                    continue
                if "error" in message:
                    fault = message["error"]
                    raise MachineError(f"machine {self.machine}: QEMU: {name}: {fault.get('desc', fault)}")
                return message.get("return")

    def take_events(self, timeout: float) -> list[dict[str, Any]]:
        """The events QEMU sent since the last call; when none, wait up to `timeout` s for one.

        The monitor's lock is taken a slice at a time, so that commands of other threads go on.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self.events:
                    slice_end = min(deadline - time.monotonic(), EVENT_SLICE)
                    if select.select([self._connection], [], [], max(slice_end, 0))[0]:
                        message = self._read()  # no command waits for a reply: it is an event
                        if "event" in message:
                            self.events.append(message)
                if self.events or time.monotonic() >= deadline:
                    taken, self.events = self.events, []
                    return taken

    def close(self) -> None:
        self._file.close()
        self._connection.close()
