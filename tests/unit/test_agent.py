"""The command agent, run on the host itself: exact output, status, timeouts, background jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.command.channel import Channel, ChannelClosed, spawn_agent
from herd.linux.agent import decode_frames, encode_frame


@pytest.fixture
def channel() -> Iterator[Channel]:
    opened = spawn_agent("host")
    yield opened
    opened.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_frames_round_trip_and_wait_for_the_whole_frame() -> None:
    data = bytearray(encode_frame({"id": 1, "x": "é"}, b"\0body") + encode_frame({"id": 2}))
    partial = bytearray(data[:10])
    assert decode_frames(partial) == [] and len(partial) == 10
    assert decode_frames(data) == [({"id": 1, "x": "é"}, b"\0body"), ({"id": 2}, b"")]
    assert data == bytearray()


def test_stdout_stderr_and_status_are_exact(channel: Channel) -> None:
    result = channel.run("printf 'out\\n'; printf 'err' >&2; exit 3", timeout=10)
    assert (result.status, result.stdout, result.stderr, result.timed_out) == (3, b"out\n", b"err", False)


def test_output_is_binary_safe(channel: Channel) -> None:
    every_byte = bytes(range(256))
    result = channel.run("cat", timeout=10, stdin=every_byte * 3)
    assert result.stdout == every_byte * 3


def test_large_output_arrives_whole(channel: Channel) -> None:
    result = channel.run("head -c 20000000 /dev/zero; head -c 3000000 /dev/zero >&2", timeout=30)
    assert len(result.stdout) == 20_000_000 and len(result.stderr) == 3_000_000


def test_large_input_and_output_at_once_do_not_deadlock(channel: Channel) -> None:
    data = os.urandom(5_000_000)
    assert channel.run("cat", timeout=30, stdin=data).stdout == data


def test_a_background_process_does_not_hang_the_call(channel: Channel, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = channel.run(f"sleep 30 & echo $! > {pid_file}; echo started", timeout=10)
    assert result.stdout == b"started\n" and time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    assert alive(pid)
    os.kill(pid, 9)


def test_a_timeout_kills_the_whole_command(channel: Channel, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = channel.run(f"sh -c 'echo $$ > {pid_file}; sleep 60'; echo never", timeout=0.5)
    assert result.timed_out and result.status == 128 + 9
    assert time.monotonic() - started < 5
    assert_dies(int(pid_file.read_text()))


def assert_dies(pid: int) -> None:
    """Process `pid` is gone within five seconds."""
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(pid), f"the command's process {pid} survived"


def test_an_interrupted_call_cancels_its_command(channel: Channel, tmp_path: Path) -> None:
    """Ctrl-C while a command runs (KeyboardInterrupt in the waiting thread) kills the command in
    the machine, not only the wait for it; the channel serves the next command."""
    pid_file = tmp_path / "pid"

    def interrupt(_number: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            channel.run(f"sh -c 'echo $$ > {pid_file}; sleep 60'; echo never", timeout=None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert_dies(int(pid_file.read_text()))
    assert channel.run("echo next", timeout=10).stdout == b"next\n"


def test_a_signal_gives_128_plus_its_number(channel: Channel) -> None:
    assert channel.run("kill -TERM $$", timeout=10).status == 128 + 15


def test_commands_run_concurrently(channel: Channel) -> None:
    results: list[bytes] = []
    started = time.monotonic()

    def run(n: int) -> None:
        results.append(channel.run(f"sleep 0.5; echo {n}", timeout=10).stdout)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [f"{n}\n".encode() for n in range(8)]
    assert time.monotonic() - started < 3


def test_closing_the_channel_kills_running_commands(tmp_path: Path) -> None:
    opened = spawn_agent("host")
    pid_file = tmp_path / "pid"
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            opened.run(f"echo $$ > {pid_file}; exec sleep 60", 60)
        except ChannelClosed as error:
            errors.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 5
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int(pid_file.read_text())
    opened.close()
    waiter.join(5)
    assert errors, "the waiting call did not learn that the channel closed"
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(pid)
    with pytest.raises(ChannelClosed):
        opened.run("true", timeout=1)


def test_entering_a_process_that_does_not_exist_fails_clearly(channel: Channel) -> None:
    with pytest.raises(ChannelClosed, match="No such file"):
        channel.enter(2**22 + 12345)
    assert channel.run("echo still here", timeout=5).stdout == b"still here\n"


def test_entering_adds_environment_for_every_command_after() -> None:
    import os as _os

    opened = spawn_agent("host")
    try:
        opened.enter(_os.getpid(), environment={"HERD_TEST_VARIABLE": "granted"})
        assert opened.run("echo $HERD_TEST_VARIABLE; echo $PATH", timeout=5).stdout.startswith(b"granted\n/")
    finally:
        opened.close()


def test_commands_run_in_bash_with_errexit_nounset_and_pipefail(channel: Channel) -> None:
    assert channel.run("[[ 1 == 1 ]] && echo yes", timeout=10).stdout == b"yes\n"
    assert channel.run("false | true", timeout=10).status == 1
    unset = channel.run("echo before; echo $HERD_SURELY_UNSET; echo after", timeout=10)
    assert (unset.status, unset.stdout) == (1, b"before\n") and b"HERD_SURELY_UNSET: unbound" in unset.stderr
    assert channel.run("false; echo never", timeout=10).stdout == b""


def test_no_process_command_line_holds_the_command(channel: Channel) -> None:
    marker = f"herd-marker-{os.getpid()}-{time.monotonic_ns()}"
    result = channel.run(f": {marker}; ps -eo args", timeout=10)
    assert result.status == 0 and b"ps -eo args" in result.stdout
    assert marker.encode() not in result.stdout


def test_pkill_by_a_pattern_in_the_command_does_not_kill_the_command(channel: Channel) -> None:
    channel.run("sleep 300.123 >/dev/null 2>&1 &", timeout=10)
    assert channel.run("pgrep -f 'sleep 300.123'", timeout=10).status == 0
    result = channel.run("pkill -f 'sleep 300.123' && echo killed", timeout=10)
    assert (result.status, result.stdout) == (0, b"killed\n")
    assert channel.run("pgrep -f 'sleep 300.123'", timeout=10).status == 1


def test_commands_inherit_no_descriptor_but_their_stdin_stdout_and_stderr(channel: Channel) -> None:
    listing = channel.run("ls -l /proc/self/fd/", timeout=10).stdout.decode()
    targets = {line.split()[-3]: line.split()[-1] for line in listing.splitlines() if " -> " in line}
    # ls reads the listing through a descriptor of its own: the lowest free one, 3
    assert set(targets) == {"0", "1", "2", "3"} and targets["3"].endswith("/fd"), listing


def test_stdin_reaches_the_command_and_a_long_command_arrives_whole(channel: Channel) -> None:
    assert channel.run("read -r line; echo got $line", timeout=10, stdin=b"input\n").stdout == b"got input\n"
    long_command = "echo " + "x" * 300_000
    assert channel.run(long_command, timeout=10).stdout == b"x" * 300_000 + b"\n"


def test_without_bash_commands_run_in_sh_with_errexit_and_nounset(monkeypatch: pytest.MonkeyPatch) -> None:
    from herd.linux import agent

    assert agent.shell_script("true") == (agent.BASH, b"exec 3<&-; set -euo pipefail; true\n")
    monkeypatch.setattr(agent, "BASH", "/nonexistent/bash")
    shell, script = agent.shell_script("false | true; echo $HERD_SURELY_UNSET")
    assert (shell, script) == ("/bin/sh", b"exec 3<&-; set -eu; false | true; echo $HERD_SURELY_UNSET\n")
    read_end, write_end = os.pipe()
    os.write(write_end, script)
    os.close(write_end)
    result = subprocess.run(
        [shell, "/proc/self/fd/3"],
        pass_fds=(3,),
        preexec_fn=lambda: os.dup2(read_end, 3),
        capture_output=True,
        check=False,
    )
    os.close(read_end)
    assert result.returncode != 0 and b"HERD_SURELY_UNSET" in result.stderr


def _standby_shells(agent_pid: int) -> list[int]:
    """The shells the agent started ahead of a command, idle on their script pipe."""
    children = Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split()
    return [int(pid) for pid in children if Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"fd/3\0")]


def test_the_next_commands_shell_waits_ready_and_a_dead_one_is_replaced(channel: Channel) -> None:
    first = int(channel.run("echo $PPID", timeout=10).stdout)
    deadline = time.monotonic() + 5
    while not (standby := _standby_shells(first)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(standby) == 1, "no shell waits for the next command"
    assert int(channel.run("echo $$", timeout=10).stdout) == standby[0]  # the next command runs in it
    while not (standby := _standby_shells(first)) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(standby[0], 9)  # a test may kill every bash of its machine
    while alive(standby[0]) and time.monotonic() < deadline:
        time.sleep(0.01)  # reaped by the agent at once: no zombie holds up a machine's halt
    assert not alive(standby[0])
    assert channel.run("echo still", timeout=10).stdout == b"still\n"
