"""Interactive sessions, on backends that declare the `shell` capability: a real terminal of the
size asked for, the shell's exit status, keystrokes, and nothing of a session left once it ends or
its user hangs up (`MachineHandle.open_session`, which `herd shell` and `shell_interact` use).
Both cases use one machine, booted once for the module: each waits until its session's processes
are gone."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from herd.testing.fixtures import machines

if TYPE_CHECKING:
    from herd.hooks.types import ShellSession
    from herd.testing.pytestrun import Herd

SHELL = ["shell"]
ANSWER_TIMEOUT = 60.0  # seconds: a VM under TCG on a busy host


def read_until(session: ShellSession, text: bytes) -> tuple[bytes, int | None]:
    """What the terminal printed until `text` appears in it or the session ends, and how it ended
    (None while it runs)."""
    seen = b""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while text not in seen:
        event = session.events.get(timeout=max(0.0, deadline - time.monotonic()))
        if not isinstance(event, bytes):
            return seen, event
        seen += event
    return seen, None


@machines({"m": {}}, scope="module", requires=SHELL)
def terminal(run: Herd) -> None:
    """The machine the sessions open on, started before the first."""
    run.start_all()


def test_a_command_runs_on_a_terminal_and_its_processes_end_with_it(terminal: Herd) -> None:
    m = terminal.m
    handle = terminal.driver.handle_of(m)
    assert handle is not None
    command = "tty; stty size; echo $TERM; nohup sleep 4545 >/dev/null 2>&1 & exit 5"
    output, status = read_until(handle.open_session(command, "xterm", 30, 90), b"\0")
    assert b"/dev/pts/" in output and b"30 90" in output and b"xterm" in output
    assert status == 5
    m.wait_until_fails("ps -eo args | grep -q 'sleep 454[5]'", timeout=30)


def test_a_login_shell_takes_keys_and_hanging_up_ends_it(terminal: Herd) -> None:
    m = terminal.m
    handle = terminal.driver.handle_of(m)
    assert handle is not None
    session = handle.open_session(None, "dumb", 24, 80)
    session.write(b"sleep 4646 & echo $((40 + 2))-ready\n")
    assert read_until(session, b"42-ready")[1] is None
    session.resize(50, 132)
    session.write(b"stty size\n")
    assert read_until(session, b"50 132")[1] is None
    session.hang_up()
    m.wait_until_fails("ps -eo args | grep -q 'sleep 464[6]'", timeout=30)
