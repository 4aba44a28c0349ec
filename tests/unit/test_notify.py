"""herd.linux.notify: sd_notify messages from a real process, and the ways a wait for them ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.linux.notify import NotifySocket, NotifyTimeout, SenderExited

# A sender as systemd is one: each argument one datagram to $NOTIFY_SOCKET, then a pause (seconds).
SENDER = """
import os, socket, sys, time
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\\0" + address[1:]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    for message in sys.argv[2:]:
        sock.sendto(message.encode(), address)
time.sleep(float(sys.argv[1]))
"""


class Sender:
    """A process that sends `messages` to `notify`, then lives `linger` seconds more."""

    def __init__(self, notify: NotifySocket, *messages: str, linger: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(linger), *messages],
            env=dict(os.environ, NOTIFY_SOCKET=notify.address),
        )
        self.pidfd = os.pidfd_open(self.process.pid)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self.pidfd)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with NotifySocket(f"@herd-test/{uuid.uuid4().hex}/notify") as opened:
        yield opened


@pytest.fixture
def senders() -> Iterator[list[Sender]]:
    started: list[Sender] = []
    yield started
    for sender in started:
        sender.close()


def test_waits_for_each_variable_a_process_sends(notify: NotifySocket, senders: list[Sender]) -> None:
    sender = Sender(notify, "X_NSPAWN_LEADER_PID=4242", "STATUS=starting\nREADY=1", linger=30)
    senders.append(sender)
    deadline = time.monotonic() + 10
    assert notify.wait_for("X_NSPAWN_LEADER_PID", sender.pidfd, deadline) == "4242"
    assert notify.wait_for("READY", sender.pidfd, deadline) == "1"
    assert notify.values == {"X_NSPAWN_LEADER_PID": "4242", "STATUS": "starting", "READY": "1"}


def test_a_variable_received_already_is_there_after_the_sender_ended(
    notify: NotifySocket, senders: list[Sender]
) -> None:
    sender = Sender(notify, "READY=1\nX_NSPAWN_LEADER_PID=7")
    senders.append(sender)
    sender.process.wait()  # it has exited, and its message waits on the socket
    assert notify.wait_for("READY", sender.pidfd, time.monotonic() + 10) == "1"
    assert notify.wait_for("X_NSPAWN_LEADER_PID", sender.pidfd, time.monotonic() + 10) == "7"


def test_a_sender_that_exits_without_the_variable_ends_the_wait_at_once(
    notify: NotifySocket, senders: list[Sender]
) -> None:
    sender = Sender(notify, "STATUS=failing")
    senders.append(sender)
    started = time.monotonic()
    with pytest.raises(SenderExited):
        notify.wait_for("READY", sender.pidfd, started + 30)
    assert time.monotonic() - started < 10
    assert "READY" not in notify.values


def test_the_deadline_ends_a_wait_for_a_variable_never_sent(
    notify: NotifySocket, senders: list[Sender]
) -> None:
    sender = Sender(notify, "STATUS=slow", linger=30)
    senders.append(sender)
    started = time.monotonic()
    with pytest.raises(NotifyTimeout):
        notify.wait_for("READY", sender.pidfd, started + 0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert sender.process.poll() is None
    with pytest.raises(NotifyTimeout):  # a deadline past already: no wait at all
        notify.wait_for("READY", sender.pidfd, started)


def test_a_path_address_replaces_a_socket_left_there(tmp_path: Path, senders: list[Sender]) -> None:
    address = tmp_path / "notify"
    NotifySocket(str(address)).close()  # an earlier boot's, still on disk
    assert address.is_socket()
    with NotifySocket(str(address)) as notify:
        sender = Sender(notify, "READY=1", linger=30)
        senders.append(sender)
        assert notify.wait_for("READY", sender.pidfd, time.monotonic() + 10) == "1"


def abstract_names() -> set[str]:
    """The abstract unix sockets bound in our network namespace, as `@name`."""
    with open("/proc/net/unix") as table:
        return {fields[7] for line in table if len(fields := line.split()) > 7 and fields[7].startswith("@")}


def test_an_abstract_address_is_a_name_that_goes_with_the_socket() -> None:
    address = f"@herd-test/{uuid.uuid4().hex}"
    with NotifySocket(address) as notify:
        assert notify.address in abstract_names()
        with pytest.raises(OSError):  # the name is taken while it is bound
            NotifySocket(address)
    assert address not in abstract_names()
