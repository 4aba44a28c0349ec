"""What a `Machine` needs from the run it belongs to: the `MachineControl` protocol.

The script's `Machine` (herd.run.machine) builds the NixOS test driver's API (commands, waits, files,
units, consoles) on these few operations, and knows nothing else of the run: neither its backend's
hooks nor the driver. The run gives each machine its own control (`herd.run.fleet.RunMachine`, which
reaches the backend through its hooks); the unit tests give it an in-memory machine, so that the
Machine API and every wait are tested without root.

Each operation on the machine boots it first when it is not running (a machine starts on its first
use), as `start()` does; `is_running`, `responds`, `stop` and `console_text` are the exceptions.
Operations that need a capability are called only when `backend_info` declares it (`Machine`
checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from herd.hooks.types import BackendInfo, Capability, ExecResult, ShellSession, StopMode
    from herd.report.log import RunLog


class MachineControl(Protocol):
    """One machine of a run, as its `Machine` drives it."""

    # -- what the machine is, and where its run writes ------------------------------------------

    @property
    def backend_info(self) -> BackendInfo:
        """The machine's backend: its name, kind and capabilities."""

    def backends_with(self, capability: Capability) -> list[str]:
        """The installed backends that declare `capability` (to say where a missing one is)."""

    @property
    def log(self) -> RunLog:
        """The run's log."""

    @property
    def output_dir(self) -> Path:
        """The run's output directory (screenshots and copied files land there)."""

    # -- lifecycle ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        """Whether the machine runs (it booted, and no stop has released it since)."""

    def start(self) -> None:
        """Boot the machine unless it runs, and wait until it is ready."""

    def stop(self, mode: StopMode) -> None:
        """Stop the machine (nothing happens when it is not running) and release it."""

    def responds(self) -> bool:
        """Whether the running machine still runs a command (`true`): False once it has powered
        off, or when it is not running. The probe is not logged."""

    def reboot(self, timeout: float) -> str:
        """Reboot the machine cleanly, ready again within `timeout` seconds; returns what happened,
        for the log. Needs `reboot`."""

    # -- commands -------------------------------------------------------------------------------

    def execute(self, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        """Run a shell command as root (the run's polling conditions are checked first) and log it.
        A command past `timeout` seconds (None: no limit) is killed and comes back `timed_out`."""

    def open_session(self, command: str | None, term: str, rows: int, cols: int) -> ShellSession:
        """A login shell (or `command`) on a new terminal in the machine, not logged. Needs
        `shell`."""

    # -- console, keyboard, screen, monitor -----------------------------------------------------

    def console_text(self) -> str:
        """What the console printed since the machine last booted, with `\\n` line ends."""

    def send_chars(self, chars: str) -> None:
        """Type `chars` on the console. Needs `console`."""

    def send_keys(self, keys: list[str]) -> None:
        """Press the keys together ("ctrl", "alt", "delete"), QEMU's names. Needs `keyboard`."""

    def screenshot(self, path: Path) -> None:
        """Save the screen as PNG at `path`. Needs `screenshot`."""

    def monitor_command(self, command: str) -> str:
        """Run a command on the VM's monitor (HMP); return what it printed. Needs `monitor`."""

    def qmp_events(self, timeout: float) -> list[dict[str, Any]]:
        """The QMP events that arrived, waiting up to `timeout` seconds for one. Needs `monitor`."""

    # -- networks (None: every network the machine is on) ---------------------------------------

    def block(self, network: str | None, blocked: bool) -> None:
        """Cut the machine off the network (`blocked`), or undo it."""

    def impair(self, network: str | None, values: dict[str, Any]) -> None:
        """Degrade what the machine receives on the network, replacing an earlier impairment."""

    def unimpair(self, network: str | None) -> None:
        """Take an impairment away."""

    def forward_port(self, host_port: int, guest_port: int, network: str | None) -> int:
        """Make `guest_port` of the machine reachable at 127.0.0.1:`host_port` on the host (0: a
        free port); return the host port."""

    def connect(self, network: str) -> None:
        """Plug the running machine into one of the test's networks. Needs `hotplug`."""

    def disconnect(self, network: str) -> None:
        """Unplug the running machine from a network. Needs `hotplug`."""
