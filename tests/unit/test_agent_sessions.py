"""The agent's interactive sessions, run on the host itself: a real terminal, its size, its exit
status, and nothing of a session left once it ends or its user hangs up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.command.channel import Channel, TerminalSession, spawn_agent
from herd.linux.agent import SESSION_GRACE

from .test_agent import alive


@pytest.fixture
def channel() -> Iterator[Channel]:
    opened = spawn_agent("host")
    yield opened
    opened.close()


def read_until(session: TerminalSession, text: bytes, timeout: float = 10.0) -> bytes:
    """What the terminal printed until `text` appears in it (or the session ended)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        event = session.events.get(timeout=max(0.0, deadline - time.monotonic()))
        assert isinstance(event, bytes), f"the session ended ({event}) before printing {text!r}: {seen!r}"
        seen += event
    return seen


def exit_status(session: TerminalSession, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        event = session.events.get(timeout=max(0.0, deadline - time.monotonic()))
        if not isinstance(event, bytes):
            return event


def test_a_command_runs_on_a_terminal_of_the_given_size_and_term(channel: Channel) -> None:
    session = channel.open_session('tty; stty size; echo "$TERM"; exit 7', "xterm-256color", 33, 101)
    output = read_until(session, b"xterm-256color")
    assert b"/dev/pts/" in output and b"33 101" in output
    assert exit_status(session) == 7


def test_keystrokes_reach_the_shell_and_resizing_reaches_the_terminal(channel: Channel) -> None:
    session = channel.open_session(None, "dumb", 24, 80)
    session.write(b"PS1='prompt> '; echo $((6 * 7))\n")
    read_until(session, b"42")
    session.resize(50, 132)
    session.write(b"stty size\n")
    read_until(session, b"50 132")
    session.write(b"exit 3\n")
    assert exit_status(session) == 3


def test_ctrl_c_interrupts_the_foreground_job_not_the_shell(channel: Channel) -> None:
    session = channel.open_session(None, "dumb", 24, 80)
    session.write(b"sleep 100\n")
    time.sleep(0.5)
    session.write(b"\x03")
    session.write(b"echo after-$?\n")
    read_until(session, b"after-130")
    session.write(b"exit\n")
    assert exit_status(session) == 0


def test_hanging_up_ends_every_process_of_the_session(channel: Channel, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    session = channel.open_session(None, "dumb", 24, 80)
    # a job that ignores SIGHUP, and one in a process group of its own
    session.write(
        f"set -m; nohup sleep 300 >/dev/null 2>&1 & echo $! >> {pids}; "
        f"sleep 301 & echo $! >> {pids}; echo $((1 + 1))-started\n".encode()
    )
    read_until(session, b"2-started")
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and all(alive(pid) for pid in started)
    session.hang_up()
    deadline = time.monotonic() + SESSION_GRACE + 5
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in started)


def test_processes_left_behind_by_an_exited_shell_are_ended(channel: Channel, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    session = channel.open_session(f"nohup sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}", "dumb", 24, 80)
    assert exit_status(session) == 0
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + SESSION_GRACE + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_closing_the_channel_ends_its_sessions(tmp_path: Path) -> None:
    opened = spawn_agent("host")
    pid_file = tmp_path / "pid"
    session = opened.open_session(None, "dumb", 24, 80)
    session.write(f"echo $$ > {pid_file}; echo $((1 + 1))-ready\n".encode())
    read_until(session, b"2-ready")
    opened.close()
    assert exit_status(session) is None
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
