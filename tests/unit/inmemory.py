"""An in-memory machine: a small, real implementation of `MachineControl` (herd.run.machinecontrol), so
that the Machine API and its waits are tested without root, backends or processes.

Its shell answers the commands the Machine API sends (file tests, TCP and UNIX socket probes,
`systemctl`, `sleep`, virtual terminals, `cat` to and from files, commands started in the background)
from state a test sets: files, listening ports and sockets, units and their jobs. Any other command
gets the reply the test gave it (`on`), else exit status 127, as from a shell. State changes at a
time the test chooses (`after`), so a wait sees a machine come up while it polls.

Like the run's machines, it boots on its first use and writes a real run log (the Machine API's own
lines); it keeps what it was asked (commands, boots, stops, keys typed, blocks, forwards) for the
tests to read rather than logging it.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herd.errors import HerdError
from herd.hooks.types import BackendInfo, Capability, ExecResult, Kind, StopMode
from herd.report.log import RunLog

NOT_FOUND = 127  # a shell's status for a command it cannot find
KILLED = 137  # a command killed at its timeout (SIGKILL)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BACKGROUND = re.compile(r"\(\n(?P<command>.*)\n\) >/dev/null 2>&1 &", re.DOTALL)
QUOTED = r"'[^']*'|\S+"  # one word as shlex.quote writes it
TCP_PROBE = re.compile(rf"/dev/tcp/\$0/\$1' (?P<addr>{QUOTED}) (?P<port>\d+) ")
UNIX_PROBE = re.compile(
    rf"socket\.(?P<kind>SOCK_STREAM|SOCK_DGRAM)\)\.connect\(sys\.argv\[1\]\)' (?P<path>{QUOTED}) "
)
USER_MANAGER = re.compile(r"XDG_RUNTIME_DIR=/run/user/\$\(id -u\) systemctl --user (?P<query>.*)")
TTY_TEXT = re.compile(r"fold -w \$\(stty -F /dev/tty(?P<tty>\d+) size \| cut -d' ' -f2\) /dev/vcs(?P=tty)")


@dataclass
class Reply:
    """What a command the test taught the machine (`on`) prints and returns, after `seconds`."""

    status: int = 0
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


@dataclass
class Unit:
    """A systemd unit as `systemctl show` reports it."""

    active: str = "inactive"  # ActiveState
    load: str = "loaded"  # LoadState


class InMemoryMachine:
    """One machine, all in memory. `others` maps a capability to the backends that would have it
    (what `backends_with` answers)."""

    def __init__(
        self,
        name: str,
        output_dir: Path,
        capabilities: frozenset[Capability] = frozenset(),
        others: dict[Capability, list[str]] | None = None,
    ) -> None:
        self.backend_info = BackendInfo(
            name="memory", kind=Kind.CONTAINER, capabilities=capabilities, description="in memory"
        )
        self.name = name
        self.others = others or {}
        self.output_dir = output_dir
        self.log = RunLog(output_dir / "log.txt", None)
        self.running = False
        self.powered_off = False  # its init powered it off; the run has not released it yet
        self.boots = 0
        self.stops: list[StopMode] = []
        self.commands: list[str] = []  # every command run, in order
        self.started: list[float] = []  # when each began (time.monotonic())
        self.files: dict[str, bytes] = {}
        self.ports: set[tuple[str, int]] = set()
        self.sockets: set[tuple[str, str]] = set()  # (path, "SOCK_STREAM" or "SOCK_DGRAM")
        self.units: dict[str, Unit] = {}
        self.user_units: dict[str, dict[str, Unit]] = {}
        self.jobs: list[str] = []
        self.ttys: dict[int, str] = {}
        self.console = ""
        self.typed: list[str] = []
        self.pressed: list[list[str]] = []
        self.monitor: dict[str, str] = {}
        self.qmp: list[dict[str, Any]] = []
        self.networks = {"default"}
        self.blocked: dict[str | None, bool] = {}
        self.impairments: dict[str | None, dict[str, Any]] = {}
        self.forwards: dict[int, tuple[int, str | None]] = {}
        self._replies: dict[str, Reply | Callable[[bytes], Reply]] = {}
        self._changes: list[tuple[float, Callable[[], object]]] = []
        self._lock = threading.Lock()

    # -- what a test sets up --------------------------------------------------------------------

    def on(self, command: str, reply: Reply | Callable[[bytes], Reply]) -> None:
        """Answer `command` with `reply` from now on (a function gets the command's input)."""
        self._replies[command] = reply

    def after(self, seconds: float, change: Callable[[], object]) -> None:
        """Make `change` to the machine `seconds` from now (seen by the commands run from then)."""
        with self._lock:
            self._changes.append((time.monotonic() + seconds, change))

    def _apply_due_changes(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [change for at, change in self._changes if at <= now]
            self._changes = [(at, change) for at, change in self._changes if at > now]
        for change in due:
            change()

    # -- MachineControl: what the machine is ----------------------------------------------------

    def backends_with(self, capability: Capability) -> list[str]:
        return self.others.get(capability, [])

    # -- lifecycle ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.running

    def start(self) -> None:
        if self.running:
            return
        self.running, self.powered_off = True, False
        self.boots += 1
        self.console = f"boot {self.boots}\n"

    def stop(self, mode: StopMode) -> None:
        if self.running:
            self.running = False
            self.stops.append(mode)

    def responds(self) -> bool:
        self._apply_due_changes()
        return self.running and not self.powered_off

    def reboot(self, timeout: float) -> str:
        self.start()
        self.boots += 1
        self.console = f"boot {self.boots}\n"
        return "rebooted"

    # -- commands -------------------------------------------------------------------------------

    def execute(self, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        self.start()
        self._apply_due_changes()
        if self.powered_off:
            raise HerdError("the machine has powered off")
        self.commands.append(command)
        self.started.append(time.monotonic())
        reply = self._reply(command, stdin)
        if timeout is not None and reply.seconds > timeout:
            time.sleep(timeout)
            return ExecResult(KILLED, reply.stdout.encode(), b"", timed_out=True)
        time.sleep(reply.seconds)
        return ExecResult(reply.status, reply.stdout.encode(), reply.stderr.encode())

    def _reply(self, command: str, stdin: bytes) -> Reply:
        """What the machine's shell does with `command`."""
        if command in self._replies:
            known = self._replies[command]
            return known(stdin) if callable(known) else known
        if (background := BACKGROUND.fullmatch(command)) is not None:
            self._reply(background["command"], b"")
            return Reply()  # the shell exits at once
        if (probe := TCP_PROBE.search(command)) is not None:
            return Reply(0 if (shlex.split(probe["addr"])[0], int(probe["port"])) in self.ports else 1)
        if (probe := UNIX_PROBE.search(command)) is not None:
            return Reply(0 if (shlex.split(probe["path"])[0], probe["kind"]) in self.sockets else 1)
        if (tty := TTY_TEXT.fullmatch(command)) is not None:
            return Reply(stdout=self.ttys.get(int(tty["tty"]), ""))
        words = shlex.split(command)
        match words:
            case ["test", "-e", path]:
                return Reply(0 if path in self.files else 1)
            case ["cat", ">", path]:
                self.files[path] = stdin
                return Reply()
            case ["cat", path] if path in self.files:
                return Reply(stdout=self.files[path].decode())
            case ["sleep", seconds]:
                return Reply(seconds=float(seconds))
            case ["systemctl", "poweroff", *_]:
                self.powered_off = True
                return Reply()
            case ["systemctl", *query]:
                return self._systemctl(self.units, query)
            case ["su", "-l", user, "--shell", "/bin/sh", "-c", inner]:
                if (manager := USER_MANAGER.fullmatch(inner)) is None:
                    return Reply(NOT_FOUND, stderr=f"sh: 1: {inner}: not found\n")
                return self._systemctl(self.user_units.setdefault(user, {}), shlex.split(manager["query"]))
        return Reply(NOT_FOUND, stderr=f"sh: 1: {words[0] if words else command}: not found\n")

    def _systemctl(self, units: dict[str, Unit], query: list[str]) -> Reply:
        match query:
            case ["--no-pager", "show", name]:
                unit = units.get(name, Unit(load="not-found"))
                return Reply(stdout=f"Id={name}\nLoadState={unit.load}\nActiveState={unit.active}\n")
            case ["list-jobs", "--no-legend", "--full"]:
                return Reply(stdout="".join(f"{job}\n" for job in self.jobs))
            case ["start", *names]:
                for name in names:
                    units.setdefault(name, Unit()).active = "active"
                return Reply()
            case ["stop", *names]:
                for name in names:
                    units.setdefault(name, Unit()).active = "inactive"
                return Reply()
        return Reply(1, stderr=f"Unknown command verb {' '.join(query)}.\n")

    # -- console, keyboard, screen, monitor -----------------------------------------------------

    def console_text(self) -> str:
        self._apply_due_changes()
        return self.console

    def send_chars(self, chars: str) -> None:
        self.start()
        self.typed.append(chars)

    def send_keys(self, keys: list[str]) -> None:
        self.start()
        self.pressed.append(keys)

    def screenshot(self, path: Path) -> None:
        self.start()
        path.write_bytes(PNG_SIGNATURE)

    def monitor_command(self, command: str) -> str:
        self.start()
        return self.monitor.get(command, f"unknown command: '{command}'\r\n")

    def qmp_events(self, timeout: float) -> list[dict[str, Any]]:
        self.start()
        deadline = time.monotonic() + timeout
        while True:
            self._apply_due_changes()
            if self.qmp or time.monotonic() >= deadline:
                events, self.qmp = self.qmp, []
                return events
            time.sleep(min(0.005, timeout))

    # -- networks -------------------------------------------------------------------------------

    def _on(self, network: str | None) -> None:
        self.start()
        if network is not None and network not in self.networks:
            raise HerdError(f"machine is not on network {network!r}")

    def block(self, network: str | None, blocked: bool) -> None:
        self._on(network)
        self.blocked[network] = blocked

    def impair(self, network: str | None, values: dict[str, Any]) -> None:
        self._on(network)
        self.impairments[network] = values

    def unimpair(self, network: str | None) -> None:
        self._on(network)
        self.impairments.pop(network, None)

    def forward_port(self, host_port: int, guest_port: int, network: str | None) -> int:
        self._on(network)
        self.forwards[host_port] = (guest_port, network)
        return host_port

    def connect(self, network: str) -> None:
        self.start()
        if network in self.networks:
            raise HerdError(f"machine is on network {network!r} already")
        self.networks.add(network)

    def disconnect(self, network: str) -> None:
        self._on(network)
        self.networks.remove(network)
