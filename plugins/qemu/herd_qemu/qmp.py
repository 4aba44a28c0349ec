"""A small client of the QEMU Machine Protocol, over a socket herd handed QEMU at start.

QMP is a line of JSON per message: a greeting, then replies to commands in order, with
asynchronous events (RESET, SHUTDOWN...) between them.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from herd.errors import MachineError


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
                    error = message["error"]
                    raise MachineError(f"machine {self.machine}: QEMU: {name}: {error.get('desc', error)}")
                return message.get("return")

    def close(self) -> None:
        self._file.close()
        self._connection.close()
