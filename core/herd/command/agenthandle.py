"""A running machine whose commands herd's command agent runs (`herd.command.channel`), and whose life is a
host process: a container's supervisor or init.

Such a backend's `herd_machine_execute` is `AgentHandle.execute`, which meets the hook's contract
on a machine that died: it raises `MachineError` at once, saying how the machine ended, rather
than sending the command. When the agent goes away during a command, the machine's process is
given `EXIT_NOTICE` seconds to exit (a machine that died takes its agent with it, a moment before
its process is seen to end), and the error says how it ended; if it still runs, the agent alone
failed. The backend tells how to wait for its process (`exited`) and how it ended
(`exit_description`). `open_session` gives the agent's interactive sessions (a backend using it
declares the `shell` capability).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from herd.command.channel import Channel, ChannelClosed
from herd.errors import MachineError
from herd.hooks.types import ExecResult, MachineHandle, ShellSession

EXIT_NOTICE = 1.0  # seconds a command that lost its agent waits to see whether the machine ended


@dataclass(eq=False)
class AgentHandle(MachineHandle, abc.ABC):
    channel: Channel = field(repr=False, kw_only=True)

    @abc.abstractmethod
    def exited(self, within: float = 0.0) -> bool:
        """Whether the machine's process has exited, waiting up to `within` seconds for it to."""

    @abc.abstractmethod
    def exit_description(self) -> str:
        """How the machine ended; while its process runs, why its agent is gone."""

    def not_running(self) -> MachineError:
        return MachineError(f"machine {self.name} is not running ({self.exit_description()})")

    def execute(self, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        """Run `command` through the agent (see `herd_machine_execute`)."""
        if self.exited():
            raise self.not_running()
        try:
            return self.channel.run(command, timeout, stdin)
        except ChannelClosed as error:
            if self.exited(EXIT_NOTICE):
                raise self.not_running() from None
            raise MachineError(f"machine {self.name}: its command agent failed: {error}") from None

    def open_session(self, command: str | None, term: str, rows: int, cols: int) -> ShellSession:
        """A terminal session through the agent (see `MachineHandle.open_session`)."""
        if self.exited():
            raise self.not_running()
        try:
            return self.channel.open_session(command, term, rows, cols)
        except ChannelClosed as error:
            raise MachineError(f"machine {self.name}: its command agent failed: {error}") from None
