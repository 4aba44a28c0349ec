"""The command agent, run on the host itself: exact output, status, timeouts, background jobs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.agent import decode_frames, encode_frame
from herd.channel import Channel, ChannelClosed, spawn_agent


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
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(pid), "the timed-out command's child survived"


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
