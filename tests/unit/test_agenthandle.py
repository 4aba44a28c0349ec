"""herd.command.agenthandle: commands through a real command agent on the host, for a "machine" that is a
real host process, and what a command says when that process or its agent ends."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from herd.command.agenthandle import EXIT_NOTICE, AgentHandle
from herd.command.channel import spawn_agent
from herd.errors import MachineError
from herd.linux.process import wait_for_exit


@dataclass(eq=False)
class ProcessMachine(AgentHandle):
    """A machine whose life is one host process, as a backend writes one."""

    process: subprocess.Popen[bytes] = field(repr=False, kw_only=True)

    def exited(self, within: float = 0.0) -> bool:
        return wait_for_exit(self.process, within)

    def exit_description(self) -> str:
        if self.exited():
            return f"its process ended with status {self.process.returncode}"
        return f"its process runs, its agent does not: {self.channel.closed}"


@pytest.fixture
def machine() -> Iterator[ProcessMachine]:
    started = ProcessMachine(
        "test",
        "m",
        channel=spawn_agent("m"),
        process=subprocess.Popen(["sleep", "60"]),
    )
    yield started
    started.channel.close()
    started.process.kill()
    started.process.wait()


def test_commands_run_through_the_agent(machine: ProcessMachine) -> None:
    result = machine.execute("cat; echo err >&2; exit 3", 10, b"in\n")
    assert (result.status, result.stdout, result.stderr) == (3, b"in\n", b"err\n")


def test_a_machine_that_ended_is_not_sent_the_command(machine: ProcessMachine) -> None:
    machine.process.terminate()
    machine.process.wait()
    ended = r"^machine m is not running \(its process ended with status -15\)$"
    with pytest.raises(MachineError, match=ended):
        machine.execute("true", 10, b"")
    assert machine.channel.closed is None, "the agent was not asked anything"


def test_a_machine_that_dies_during_a_command_says_how_it_ended(machine: ProcessMachine) -> None:
    # The machine's process and its agent (the command's parent) die together, as in a container.
    command = f"kill -KILL {machine.process.pid} $PPID"
    ended = r"^machine m is not running \(its process ended with status -9\)$"
    with pytest.raises(MachineError, match=ended):
        machine.execute(command, 60, b"")


def test_an_agent_that_fails_alone_is_told_apart_after_the_notice(machine: ProcessMachine) -> None:
    started = time.monotonic()
    with pytest.raises(MachineError, match=r"^machine m: its command agent failed: "):
        machine.execute("kill -KILL $PPID", 60, b"")
    assert time.monotonic() - started >= EXIT_NOTICE
    assert machine.process.poll() is None
    with pytest.raises(MachineError, match=r"^machine m: its command agent failed: "):
        machine.execute("true", 10, b"")
