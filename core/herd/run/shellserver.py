"""The run's socket, `/run/herd/<id>/shell.sock`, where `herd list` and `herd shell` reach a live
run (root's alone, as the state directory is).

A client sends one frame (`herd.linux.agent`'s framing) and the run answers:

    {"describe": true}   →  {"run": {...}}: the test, the run's id, its process, its output
                            directory, and each machine's backend, state and addresses
    {"open": MACHINE, "command": null or "CMD", "term": "xterm", "rows": 24, "cols": 80}
                         →  {"opened": true}, then the session (`herd.command.terminal`);
                            or {"error": "..."}, one line naming what exists

Describing reads the run's machines as they are at that moment, so a client never sees a record
that went stale.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from herd.command.terminal import FrameStream, serve_session
from herd.errors import CapabilityError, HerdError, MachineError
from herd.hooks.types import Capability, ShellSession

if TYPE_CHECKING:
    from herd.network.plan import RunNetworks
    from herd.run.fleet import Fleet, RunMachine

SOCKET_NAME = "shell.sock"


@dataclass(frozen=True)
class RunFacts:
    """What a run's description says that does not change while it runs."""

    test: str
    run_id: str
    output_dir: Path
    networks: RunNetworks


def machine_state(machine: RunMachine) -> str:
    if machine.handle is not None:
        return "running"
    return "stopped" if machine.booted else "not started"


def open_session(
    fleet: Fleet, run_id: str, name: str, *, command: str | None, term: str, rows: int, cols: int
) -> ShellSession:
    """A session on machine `name` of the run; a one-line error naming what exists when the
    machine does not, does not run, or its backend cannot."""
    machine = fleet.machines.get(name)
    if machine is None:
        raise HerdError(f"run {run_id} has no machine {name!r}; its machines: {', '.join(fleet.machines)}")
    handle = machine.handle
    if handle is None:
        running = [m.name for m in fleet.machines.values() if m.handle is not None]
        raise MachineError(
            f"machine {name} of run {run_id} is {machine_state(machine)}; "
            f"running: {', '.join(running) or 'none'}"
        )
    if Capability.SHELL not in machine.backend_info.capabilities:
        others = machine.backends_with(Capability.SHELL)
        raise CapabilityError(
            f"machine {name}: backend {machine.backend!r} cannot open a shell session; "
            f"backends that can: {', '.join(others) or 'none installed'}"
        )
    return handle.open_session(command, term, rows, cols)


class ShellServer:
    """Serves the run's socket in the background, a thread per client, until `close()`."""

    def __init__(self, state_dir: Path, fleet: Fleet, facts: RunFacts) -> None:
        self.path = state_dir / SOCKET_NAME
        self._fleet = fleet
        self._facts = facts
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._listener.bind(str(self.path))
        os.chmod(self.path, 0o600)  # whoever may connect gets a root shell in every machine
        self._listener.listen(8)
        threading.Thread(target=self._accept, name="herd-shell-server", daemon=True).start()

    def describe(self) -> dict[str, object]:
        facts = self._facts
        machines = [
            {
                "name": machine.name,
                "backend": machine.backend,
                "state": machine_state(machine),
                "addresses": [
                    address
                    for attachment in facts.networks.boot_attachments(machine.name)
                    for address in attachment.addresses
                ],
            }
            for machine in self._fleet.machines.values()
        ]
        return {
            "run": facts.run_id,
            "test": facts.test,
            "pid": os.getpid(),
            "output_dir": str(facts.output_dir),
            "machines": machines,
        }

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                self._clients.add(client)
            threading.Thread(target=self._serve, args=(client,), name="herd-shell", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        stream = FrameStream(client)
        try:
            request = stream.receive()
            if request is None:
                return
            header, _ = request
            if header.get("describe"):
                stream.send({"run": self.describe()})
                return
            try:
                session = open_session(
                    self._fleet,
                    self._facts.run_id,
                    str(header.get("open")),
                    command=None if header.get("command") is None else str(header["command"]),
                    term=str(header.get("term") or "dumb"),
                    rows=int(header.get("rows", 24)),  # type: ignore[call-overload]
                    cols=int(header.get("cols", 80)),  # type: ignore[call-overload]
                )
            except HerdError as error:
                stream.send({"error": str(error)})
                return
            stream.send({"opened": True})
            serve_session(stream, session)
        except OSError:
            pass  # the client went away
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()

    def close(self) -> None:
        """Stop serving: every client's session is hung up, and the socket removed."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
        self.path.unlink(missing_ok=True)
