"""The host's end of a machine's command agent (see `herd.linux.agent` for the protocol).

`spawn_agent()` gives a new agent on the host, forked by a spawner process that herd starts once;
a container backend then moves it into the machine with `Channel.enter()`. Calls may come from
many threads: one reader thread hands each response to the call waiting for it, and what an
interactive session's terminal prints to that session (`Channel.open_session`). A command whose
caller is interrupted while it waits (Ctrl-C in `herd run --interactive`) is cancelled: the agent
kills it rather than let it run on in the machine.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from herd.hooks.types import ExecResult
from herd.linux import agent

AGENT_SCRIPT = Path(agent.__file__)
# How long past a command's own timeout the host waits for the agent's answer.
ANSWER_GRACE = 10.0


class ChannelClosed(Exception):
    """The agent is gone: its machine stopped or died. Backends turn this into a MachineError."""


class _Call:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.header: dict[str, object] = {}
        self.body = b""


class TerminalSession:
    """An interactive session in the machine, on a pseudo-terminal that its agent holds.

    `events` yields what the terminal prints (bytes), then the shell's exit status (an int); or
    None when the channel closed first (the machine stopped)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self.id = 0  # the agent's, once requested
        self.events: queue.SimpleQueue[bytes | int | None] = queue.SimpleQueue()

    def write(self, data: bytes) -> None:
        """Type `data` on the terminal."""
        self._channel.send({"session": self.id}, data)

    def resize(self, rows: int, cols: int) -> None:
        self._channel.send({"session": self.id, "resize": [rows, cols]})

    def hang_up(self) -> None:
        """End the session: the agent closes its terminal and ends every process of it."""
        with contextlib.suppress(ChannelClosed):  # the agent has ended them already
            self._channel.send({"session": self.id, "hangup": True})


class Channel:
    """Requests to one agent over a connected stream socket."""

    def __init__(self, name: str, connection: socket.socket) -> None:
        self.name = name
        self._socket = connection
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._sessions: dict[int, TerminalSession] = {}
        self._lock = threading.Lock()
        self._closed: str | None = None
        self._greetings = 0
        self._greeted = threading.Condition()
        self._thread = threading.Thread(target=self._read_loop, name=f"herd-channel-{name}", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        buffer = bytearray()
        reason = "its command agent exited"
        try:
            while data := self._socket.recv(1 << 16):
                buffer += data
                for header, body in agent.decode_frames(buffer):
                    self._deliver(header, body)
        except OSError as error:
            reason = f"reading from its command agent failed: {error}"
        with self._lock:
            self._closed = reason
            calls = list(self._calls.values())
            self._calls.clear()
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for call in calls:
            call.done.set()
        for session in sessions:
            session.events.put(None)
        with self._greeted:
            self._greeted.notify_all()

    def _deliver(self, header: dict[str, object], body: bytes) -> None:
        if "session" in header:
            self._deliver_session(int(header["session"]), header, body)  # type: ignore[call-overload]
            return
        if "id" not in header:  # a greeting: an agent in a VM says so whenever it starts
            with self._greeted:
                self._greetings += 1
                self._greeted.notify_all()
            return
        with self._lock:
            call = self._calls.pop(int(header["id"]), _Call())  # type: ignore[call-overload]
        call.header, call.body = header, body
        call.done.set()

    def _deliver_session(self, session_id: int, header: dict[str, object], body: bytes) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and "status" in header:
                del self._sessions[session_id]
        if session is not None:
            session.events.put(int(header["status"]) if "status" in header else body)  # type: ignore[call-overload]

    @property
    def greetings(self) -> int:
        """How many times an agent has greeted on this channel (once per boot of a VM)."""
        return self._greetings

    def wait_greeting(self, seen: int, timeout: float) -> bool:
        """Wait until the agent has greeted more than `seen` times; False on timeout."""
        with self._greeted:
            return self._greeted.wait_for(
                lambda: self._greetings > seen or self._closed is not None, timeout
            ) and (self._greetings > seen)

    def _send_locked(self, header: dict[str, object], body: bytes) -> None:
        if self._closed is not None:
            raise ChannelClosed(self._closed)
        try:
            self._socket.sendall(agent.encode_frame(header, body))
        except OSError as error:
            raise ChannelClosed(f"writing to its command agent failed: {error}") from error

    def send(self, header: dict[str, object], body: bytes = b"") -> None:
        """Send one frame that has no answer (a session's)."""
        with self._lock:
            self._send_locked(header, body)

    def _request(
        self,
        header: dict[str, object],
        body: bytes,
        wait: float | None,
        session: TerminalSession | None = None,
    ) -> _Call:
        """Send one request and wait for its answer (raise ChannelClosed when none comes). The
        frames of a `session` it opens go to that session from the first."""
        call = _Call()
        with self._lock:
            request_id = next(self._ids)
            self._calls[request_id] = call
            if session is not None:
                session.id = request_id
                self._sessions[request_id] = session
            try:
                self._send_locked({"id": request_id, **header}, body)
            except ChannelClosed:
                del self._calls[request_id]
                self._sessions.pop(request_id, None)
                raise
        try:
            answered = call.done.wait(wait)
        except BaseException:  # Ctrl-C (KeyboardInterrupt) or a signal that ends the run
            self._give_up(request_id, cancel="command" in header)
            raise
        if not answered:
            self._give_up(request_id, cancel=False)
            raise ChannelClosed(f"its command agent did not answer within {wait:g} s")
        if not call.header:
            raise ChannelClosed(self._closed or "its command agent exited")
        if "error" in call.header:
            with self._lock:
                self._sessions.pop(request_id, None)
            raise ChannelClosed(str(call.header["error"]))
        return call

    def _give_up(self, request_id: int, cancel: bool) -> None:
        """Stop waiting for request `request_id`; with `cancel`, have the agent kill its command."""
        with self._lock:
            self._calls.pop(request_id, None)
            self._sessions.pop(request_id, None)
            if cancel and self._closed is None:
                with contextlib.suppress(OSError):  # the agent is gone, and its commands with it
                    self._socket.sendall(agent.encode_frame({"cancel": request_id}))

    def enter(
        self,
        pid: int,
        cgroup_procs: tuple[str, ...] = (),
        environment: Mapping[str, str] | None = None,
        filters: Sequence[bytes] = (),
        timeout: float = ANSWER_GRACE,
    ) -> None:
        """Make the agent join process `pid`'s namespaces and the given cgroups and install the
        seccomp `filters` (`herd.linux.seccomp.filters_of(pid)`); `environment` is added to that of every
        command it runs from then on (a device grant's variables)."""
        request = {
            "enter": pid,
            "cgroup_procs": list(cgroup_procs),
            "environment": dict(environment or {}),
            "filters": [base64.b64encode(program).decode() for program in filters],
        }
        self._request(request, b"", timeout)

    def run(self, command: str, timeout: float | None, stdin: bytes = b"") -> ExecResult:
        """Run `command` through the agent and wait for its result."""
        wait = None if timeout is None else timeout + ANSWER_GRACE
        call = self._request({"command": command, "timeout": timeout}, stdin, wait)
        split = int(call.header["stdout"])  # type: ignore[call-overload]
        return ExecResult(
            status=int(call.header["status"]),  # type: ignore[call-overload]
            stdout=call.body[:split],
            stderr=call.body[split:],
            timed_out=bool(call.header["timed_out"]),
        )

    def open_session(
        self, command: str | None, term: str, rows: int, cols: int, timeout: float = ANSWER_GRACE
    ) -> TerminalSession:
        """Start a login shell (or `command`, in `bash -lc`) on a new terminal of `rows` and
        `cols` whose TERM is `term`."""
        session = TerminalSession(self)
        options = {"command": command, "term": term, "rows": rows, "cols": cols}
        self._request({"session": options}, b"", timeout, session)
        return session

    @property
    def closed(self) -> str | None:
        """Why the channel closed, or None while it is open."""
        return self._closed

    def close(self) -> None:
        """Close our end: the agent kills what still runs and exits."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_WR)
        self._thread.join(timeout=5)
        self._socket.close()


class _Spawner:
    """The process that forks agents: started on first use, it ends when herd's process does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(AGENT_SCRIPT), str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,  # Ctrl-C reaches herd, which then tears down in order
        )
        theirs.close()
        return ours

    def _ensure_started(self) -> socket.socket:
        if self._control is None or (self._process is not None and self._process.poll() is not None):
            self._control = self._start()
        return self._control

    def start(self) -> None:
        with self._lock:
            self._ensure_started()

    def spawn(self, name: str) -> Channel:
        host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            socket.send_fds(self._ensure_started(), [b"agent"], [agent_end.fileno()])
        agent_end.close()
        return Channel(name, host_end)


_spawner = _Spawner()


def start_spawner() -> None:
    """Start the process that forks agents now, so that it is ready when the first machine is."""
    _spawner.start()


def spawn_agent(name: str) -> Channel:
    """A new command agent on the host, for the machine `name`; move it in with `enter()`."""
    return _spawner.spawn(name)
