"""A machine's terminal session carried over a stream socket: the run's end (`serve_session`) and
the end on the user's terminal (`attach`).

`herd shell` connects to its run's socket (`herd.run.shellserver`); `shell_interact` uses a socket
pair inside the run's process. The two ends exchange the agent's frames (`herd.linux.agent`):

    user → run   {"input": true} + keystrokes;  {"resize": [rows, cols]};  closing the socket
                 hangs the session up, which ends every process of it
    run → user   {"output": true} + what the terminal printed;  {"status": N} when its shell
                 exited;  {"error": "..."} when the machine went away first
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import termios
import threading
import tty
from types import FrameType

from herd.command.channel import ChannelClosed
from herd.errors import HerdError
from herd.hooks.types import ShellSession
from herd.linux import agent

READ_SIZE = 1 << 16
DEFAULT_SIZE = (24, 80)  # rows, columns: where the user's side is no terminal


class FrameStream:
    """Frames over a connected stream socket: sent from any thread, received by one."""

    def __init__(self, connection: socket.socket) -> None:
        self.socket = connection
        self._inbox = bytearray()
        self._received: list[tuple[dict[str, object], bytes]] = []
        self._sending = threading.Lock()

    def send(self, header: dict[str, object], body: bytes = b"") -> None:
        with self._sending:
            self.socket.sendall(agent.encode_frame(header, body))

    def receive(self) -> tuple[dict[str, object], bytes] | None:
        """The next frame; None once the other end closed."""
        while not self._received:
            data = self.socket.recv(READ_SIZE)
            if not data:
                return None
            self._inbox += data
            self._received = agent.decode_frames(self._inbox)
        return self._received.pop(0)

    def pending(self) -> bool:
        """Whether frames are received already, which `receive` gives without reading."""
        return bool(self._received)


def serve_session(stream: FrameStream, session: ShellSession) -> None:
    """Relay `session` to the user at the other end of `stream` until either end is done; then
    hang the session up (nothing of it outlives its user)."""

    def to_user() -> None:
        with contextlib.suppress(OSError):  # the user went away: the loop below sees it
            while isinstance(event := session.events.get(), bytes):
                stream.send({"output": True}, event)
            if event is None:
                stream.send({"error": "the machine went away"})
            else:
                stream.send({"status": event})
            stream.socket.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=to_user, name="herd-shell-output", daemon=True)
    sender.start()
    try:
        while (frame := stream.receive()) is not None:
            header, body = frame
            if isinstance(size := header.get("resize"), list):
                session.resize(int(size[0]), int(size[1]))
            elif "input" in header:
                session.write(body)
    except (OSError, ChannelClosed):
        pass  # the session or its user is gone
    finally:
        session.hang_up()


def interact(session: ShellSession, stdin: int = 0, stdout: int = 1) -> int:
    """Connect the user's terminal to `session` in this process (`attach` over a socket pair); the
    shell's exit status."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = threading.Thread(target=serve_session, args=(FrameStream(theirs), session), daemon=True)
    server.start()
    try:
        return attach(FrameStream(ours), stdin, stdout)
    finally:
        ours.close()  # the session hangs up, if it still runs
        server.join()
        theirs.close()


def terminal_size(fd: int) -> tuple[int, int]:
    """The rows and columns of the terminal on `fd` (`DEFAULT_SIZE` where it is none)."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return DEFAULT_SIZE
    return size.lines, size.columns


def attach(stream: FrameStream, stdin: int = 0, stdout: int = 1) -> int:
    """Connect the user's terminal (`stdin`, `stdout`) to the session at the other end of `stream`
    until the session ends; return its shell's exit status.

    A terminal on `stdin` is put in raw mode, so that every key (Ctrl-C, Ctrl-Z) reaches the
    machine, and restored however this ends; its size follows the user's window (SIGWINCH, where
    this is the main thread). Where `stdin` is no terminal, its end is typed as Ctrl-D."""
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    resized, resized_notice = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def notice(_number: int, _frame: FrameType | None) -> None:
        os.write(resized_notice, b"\0")

    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: the size stays
        previous = signal.signal(signal.SIGWINCH, notice)
    try:
        if saved is not None:
            tty.setraw(stdin, termios.TCSADRAIN)  # keys typed ahead go to the machine
        return _relay(stream, stdin, stdout, resized, typing_ends=saved is None)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(resized)
        os.close(resized_notice)


def _relay(stream: FrameStream, stdin: int, stdout: int, resized: int, typing_ends: bool) -> int:
    connection = stream.socket.fileno()
    reading = [connection, stdin, resized]
    while True:
        ready = [connection] if stream.pending() else select.select(reading, [], [])[0]
        if resized in ready:
            os.read(resized, READ_SIZE)  # the notices of every SIGWINCH so far
            stream.send({"resize": list(terminal_size(stdin))})
        if stdin in ready:
            keys = os.read(stdin, READ_SIZE)
            if not keys and not typing_ends:
                return 128 + signal.SIGHUP  # the user's terminal closed
            if not keys:
                reading.remove(stdin)
            stream.send({"input": True}, keys or b"\x04")
        if connection in ready:
            frame = stream.receive()
            if frame is None:
                raise HerdError("the run ended the session")
            header, body = frame
            if isinstance(status := header.get("status"), int):
                return status
            if "error" in header:
                raise HerdError(str(header["error"]))
            _write_all(stdout, body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
