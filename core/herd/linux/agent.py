"""herd's command agent: one long-lived process per machine that runs the test's commands.

The NixOS driver starts a new `nsenter` and a login shell for every command; herd keeps this agent
running instead, so a command costs one fork and exec (about a millisecond). The agent reads
requests from a connected socket and writes responses to it, each a frame: a header of two big-endian
32-bit lengths, a JSON object of the first length, then a body of the second length.

    request  {"id": 1, "command": "echo hi", "timeout": 5.0}   body: the command's stdin
    response {"id": 1, "status": 0, "stdout": 3, "timed_out": false}   body: stdout, then stderr

Each command runs as the NixOS test driver runs it: in bash with `set -euo pipefail` (in /bin/sh
with `set -eu` where the machine has no bash), and on no process's command line: the shell reads it
from a pipe on descriptor 3, while the request's body is its stdin. Many commands may run at once;
each answers when its shell exits, with whatever its stdout and stderr held, even when a background
process keeps them open. At its timeout a command's whole process group is killed, and so it is at
once on a request `{"cancel": ID}` (no answer of its own): the host gave up command ID, as when
Ctrl-C stops it in `herd run --interactive`.

A first request `{"id": 1, "enter": PID, "cgroup_procs": [...], "environment": {...},
"filters": [...]}` makes the agent join those cgroups and every namespace of process PID (a
container's init), take on its capability bounding set and install the seccomp filters (each a
classic BPF program, base64, in the order to install them: the init's own, see `herd.linux.seccomp`), and
adds the variables to the environment of the commands it runs; it answers
`{"id": 1, "entered": true}`. So every command carries what confines the machine's own processes.
A backend starts the agent early, while the machine boots, and sends this once the machine is
ready.

A request `{"id": 2, "session": {"command": null, "term": "xterm", "rows": 24, "cols": 80}}` opens
an interactive session instead: a login shell (or `bash -lc COMMAND`) leading a session of its own
on a new pseudo-terminal, answered `{"id": 2, "opened": true}`. From then on frames carry the
session's id: the agent sends what the terminal prints as `{"session": 2}` with the bytes as body,
and `{"session": 2, "status": 0}` when the shell exits; the host sends keystrokes as `{"session":
2}` with a body, `{"session": 2, "resize": [rows, cols]}`, and `{"session": 2, "hangup": true}`
when its user went away. A session that ends either way takes every process of it along: SIGHUP,
then SIGKILL `SESSION_GRACE` seconds later to those that are still there.

Agents are forked by one spawner process per herd process (`spawn_agents`), each on a socket the
host sends it. The spawner is executed as a script with `python -I -S`: it imports only the
standard library, and everything an agent needs is imported before it enters the machine, whose
file system may hold no Python at all.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import termios
import time

HEADER = struct.Struct("!II")
NAMESPACES = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt")
PR_CAPBSET_DROP = 24  # prctl(2)
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    "TERM": "dumb",
    "LANG": "C.UTF-8",
}
READ_SIZE = 1 << 16
BASH = "/bin/bash"
FALLBACK_SHELL = "/bin/sh"  # where a machine has no bash
SCRIPT_FD = 3  # the descriptor a command's shell reads the command from
VIRTIO_PORTS = "/sys/class/virtio-ports"
WINSIZE = struct.Struct("HHHH")  # struct winsize: rows, columns, and two sizes in pixels
SESSION_GRACE = 2.0  # seconds a session's processes have after SIGHUP before SIGKILL


def encode_frame(header: dict[str, object], body: bytes = b"") -> bytes:
    """One frame of the agent's protocol (used by both ends)."""
    data = json.dumps(header, separators=(",", ":")).encode()
    return HEADER.pack(len(data), len(body)) + data + body


def decode_frames(buffer: bytearray) -> list[tuple[dict[str, object], bytes]]:
    """Take every complete frame off the front of `buffer`."""
    frames = []
    while len(buffer) >= HEADER.size:
        header_size, body_size = HEADER.unpack_from(buffer)
        end = HEADER.size + header_size + body_size
        if len(buffer) < end:
            break
        header = json.loads(bytes(buffer[HEADER.size : HEADER.size + header_size]))
        frames.append((header, bytes(buffer[HEADER.size + header_size : end])))
        del buffer[:end]
    return frames


def _capability_bound(pid: int) -> int:
    """The capability bounding set of process `pid`, as a bit mask."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    raise OSError(f"process {pid} shows no capability bounding set")


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


def install_filters(libc: ctypes.CDLL, filters: list[bytes]) -> None:
    """Install seccomp filters (classic BPF programs, 8 bytes an instruction), the first first.

    Without no_new_privs, which would disable the machine's SUID binaries: the caller must hold
    CAP_SYS_ADMIN in its user namespace, as an agent that just joined the machine's does."""
    for program in filters:
        fprog = _SockFprog(len(program) // 8, program)
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot install the machine's system-call filter: {os.strerror(code)}")


def enter(pid: int, cgroup_procs: list[str], filters: list[bytes]) -> None:
    """Join the cgroup and every namespace of process `pid` (which must differ from ours), take on
    its capability bounding set and install its system-call filters: commands get no capability
    and no system call the machine's own processes lack."""
    for path in cgroup_procs:
        with open(path, "w") as handle:
            handle.write(str(os.getpid()))
    libc = ctypes.CDLL(None, use_errno=True)
    bound = _capability_bound(pid)
    with open("/proc/sys/kernel/cap_last_cap") as last:
        last_capability = int(last.read())
    descriptors = []
    for name in NAMESPACES:
        target = f"/proc/{pid}/ns/{name}"
        if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
            continue
        descriptors.append((name, os.open(target, os.O_RDONLY | os.O_CLOEXEC)))
    for name, descriptor in descriptors:
        if libc.setns(descriptor, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot enter the {name} namespace of process {pid}: {os.strerror(code)}")
        os.close(descriptor)
    # Entering a user namespace gives every capability in it and a full bounding set, and host
    # root is nobody there: become the machine's root, then bound what it may ever regain.
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    for capability in range(last_capability + 1):
        if not bound & (1 << capability) and libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot drop capability {capability}: {os.strerror(code)}")
    install_filters(libc, filters)
    os.chdir("/")


class Command:
    """One running command: its shell, the pipes being read and written, and its deadline."""

    def __init__(self, request_id: int, pid: int, pidfd: int, deadline: float | None) -> None:
        self.id = request_id
        self.pid = pid
        self.pidfd = pidfd
        self.deadline = deadline
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        self.reading: dict[int, str] = {}  # our ends of its stdout and stderr
        self.writing: dict[int, memoryview] = {}  # our ends of its script and stdin: what is left
        self.timed_out = False

    def kill(self) -> None:
        """Kill the command's whole process group (its shell leads a session of its own)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


def has_bash() -> bool:
    """Whether the machine has bash: commands and sessions run in it, else in /bin/sh."""
    return os.access(BASH, os.X_OK)


def shell_script(command: str) -> tuple[str, bytes]:
    """The shell that runs `command`, and the script it reads: bash with `set -euo pipefail`, as
    the NixOS test driver runs commands, or /bin/sh with `set -eu` in a machine without bash.

    The script closes the descriptor the shell read it from, so that nothing the command starts
    inherits it; it begins on the command's first line, so that line numbers in errors are the
    command's own."""
    if has_bash():
        return BASH, f"exec {SCRIPT_FD}<&-; set -euo pipefail; {command}\n".encode()
    return FALLBACK_SHELL, f"exec {SCRIPT_FD}<&-; set -eu; {command}\n".encode()


class Shell:
    """A shell spawned to run one command: its PID and our ends of its pipes."""

    def __init__(self, path: str, environment: dict[str, str]) -> None:
        self.path = path
        script_read, self.script = os.pipe2(os.O_CLOEXEC)
        stdin_read, self.stdin = os.pipe2(os.O_CLOEXEC)
        self.stdout, stdout_write = os.pipe2(os.O_CLOEXEC)
        self.stderr, stderr_write = os.pipe2(os.O_CLOEXEC)
        theirs = (stdin_read, stdout_write, stderr_write, script_read)  # become its 0, 1, 2, 3
        try:
            self.pid = os.posix_spawn(
                path,
                [path, f"/proc/self/fd/{SCRIPT_FD}"],
                environment,
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(theirs)],
                setsid=True,
            )
        except OSError:
            self._close(self.script, self.stdin, self.stdout, self.stderr)
            raise
        finally:
            self._close(*theirs)
        self.pidfd = os.pidfd_open(self.pid)

    @staticmethod
    def _close(*fds: int) -> None:
        for fd in fds:
            os.close(fd)

    def alive(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]

    def discard(self) -> None:
        """Kill a shell that ran nothing, and forget it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self._close(self.pidfd, self.script, self.stdin, self.stdout, self.stderr)


def session_argv(command: str | None) -> list[str]:
    """An interactive login shell, or one that runs `command`: bash, or /bin/sh without it."""
    shell = BASH if has_bash() else FALLBACK_SHELL
    return [shell, "-l"] if command is None else [shell, "-lc", command]


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """Tell the terminal its size (the kernel signals SIGWINCH to its foreground job)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, WINSIZE.pack(rows, cols, 0, 0))


def session_members(proc: int, sid: int) -> list[int]:
    """The processes of session `sid`, read from the /proc open as `proc`: the one of the agent's
    own PID namespace, whose numbers are those `kill` takes (the machine's /proc numbers its own)."""
    members = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            stat = os.open(f"{name}/stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        except OSError:  # gone meanwhile
            continue
        try:
            fields = os.read(stat, 4096).rsplit(b")", 1)[1].split()
        except OSError:
            continue
        finally:
            os.close(stat)
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            members.append(int(name))
    return members


class Session:
    """An interactive session: its leader (the shell), the pseudo-terminal's master end, and the
    keystrokes not yet written to it."""

    def __init__(self, session_id: int, pid: int, master: int) -> None:
        self.id = session_id
        self.pid = pid  # the leader: its PID is the session's id
        self.pidfd = os.pidfd_open(pid)
        self.master: int | None = master  # None once closed
        self.pending = bytearray()
        self.hung_up = False


def _start_session_leader(argv: list[str], environment: dict[str, str], terminal: int) -> int:
    """Fork the shell of a session: it leads a new session whose controlling terminal is
    `terminal`, in its home directory, with the signal dispositions a login would give it."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.login_tty(terminal)
        for number in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by Python, inherited through exec
            signal.signal(number, signal.SIG_DFL)
        with contextlib.suppress(OSError):
            os.chdir(environment.get("HOME", "/"))
        os.execve(argv[0], argv, environment)
    finally:
        os._exit(127)


def _reserve_low_descriptors() -> None:
    """Keep descriptors 0 to SCRIPT_FD open for good (on /dev/null where they are not), so that no
    pipe of a command is ever one of them: each is the target of a dup2 when a shell is spawned."""
    for fd in range(SCRIPT_FD + 1):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: fd itself
            if null != fd:
                os.close(null)
                raise OSError(f"agent: cannot reserve descriptor {fd}") from None


class Agent:
    """Serves requests arriving on `fd` (a connected socket) until the other end closes it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.selector = selectors.DefaultSelector()
        self.commands: dict[int, Command] = {}
        self.sessions: dict[int, Session] = {}
        self.killing: list[tuple[float, int]] = []  # (when, session id): SIGKILL what is left of it
        # Opened before the agent enters a machine: see `session_members`.
        self.proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.inbox = bytearray()
        self.open = True
        self.environment = dict(ENVIRONMENT)
        # The next command's shell, started while the last command ran: bash takes about half a
        # millisecond to start, which a command then does not wait for. It idles, blocked on
        # reading its script, until a command arrives (`ps` shows it as bash /proc/self/fd/3).
        self.standby: Shell | None = None
        self.selector.register(fd, selectors.EVENT_READ, ("requests", None))
        _reserve_low_descriptors()
        os.chdir("/")  # every command's working directory

    def send(self, header: dict[str, object], body: bytes = b"") -> None:
        data = memoryview(encode_frame(header, body))
        while data:
            data = data[os.write(self.fd, data) :]

    def _shell(self, path: str) -> Shell:
        """The standby shell if it is there, alive and of that path, else a new one."""
        standby = self.standby
        if standby is not None and standby.path == path and standby.alive():
            self.selector.unregister(standby.pidfd)
            self.standby = None
            return standby
        self.drop_standby()
        return Shell(path, self.environment)

    def _spawn_standby(self, path: str) -> None:
        with contextlib.suppress(OSError):  # the next command starts one itself
            self.standby = Shell(path, self.environment)
            # Reaped as soon as it dies (a machine halting kills it), so that no zombie of ours
            # holds up its PID namespace.
            self.selector.register(self.standby.pidfd, selectors.EVENT_READ, ("standby", None))

    def drop_standby(self) -> None:
        if self.standby is not None:
            self.selector.unregister(self.standby.pidfd)
            self.standby.discard()
            self.standby = None

    def start(self, header: dict[str, object], body: bytes) -> None:
        """Give the command to a shell, which reads it from a pipe (never from its argv, so no
        process's command line holds the command's text), with `body` as its stdin."""
        request_id = int(header["id"])  # type: ignore[call-overload]
        timeout = header.get("timeout")
        path, script = shell_script(str(header["command"]))
        try:
            shell = self._shell(path)
        except OSError as error:
            self.send({"id": request_id, "error": f"cannot start {path}: {error.strerror}"})
            return
        deadline = time.monotonic() + float(timeout) if timeout is not None else None  # type: ignore[arg-type]
        command = Command(request_id, shell.pid, shell.pidfd, deadline)
        self.commands[request_id] = command
        for fd, name in ((shell.stdout, "stdout"), (shell.stderr, "stderr")):
            os.set_blocking(fd, False)
            command.reading[fd] = name
            self.selector.register(fd, selectors.EVENT_READ, (name, command))
        for fd, data in ((shell.script, script), (shell.stdin, body)):
            os.set_blocking(fd, False)
            command.writing[fd] = memoryview(data)
            self.write_input(fd, command)
            if fd in command.writing:
                self.selector.register(fd, selectors.EVENT_WRITE, ("input", command))
        self.selector.register(command.pidfd, selectors.EVENT_READ, ("exit", command))
        self._spawn_standby(path)

    def read_stream(self, fd: int, name: str, command: Command) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if data:
            command.output[name] += data
        else:
            self.selector.unregister(fd)
            os.close(fd)
            del command.reading[fd]

    def write_input(self, fd: int, command: Command) -> None:
        """Write what the command's script or stdin still lacks; close the pipe once it has all."""
        pending = command.writing[fd]
        try:
            written = os.write(fd, pending[:READ_SIZE]) if pending else 0
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(pending)
        command.writing[fd] = pending = pending[written:]
        if not pending:
            if fd in self.selector.get_map():
                self.selector.unregister(fd)
            os.close(fd)
            del command.writing[fd]

    def finish(self, command: Command) -> None:
        """The command's shell exited: take what its pipes hold now and answer."""
        _, wait_status = os.waitpid(command.pid, 0)
        status = os.waitstatus_to_exitcode(wait_status)
        if status < 0:
            status = 128 - status
        for fd, name in command.reading.items():
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    break
                command.output[name] += data
        for fd in (*command.reading, *command.writing, command.pidfd):
            self.selector.unregister(fd)
            os.close(fd)
        del self.commands[command.id]
        if not self.open:  # the host hung up: nobody is waiting for the answer
            return
        stdout, stderr = command.output["stdout"], command.output["stderr"]
        self.send(
            {"id": command.id, "status": status, "stdout": len(stdout), "timed_out": command.timed_out},
            bytes(stdout) + bytes(stderr),
        )

    def expire(self) -> None:
        now = time.monotonic()
        for command in self.commands.values():
            if command.deadline is not None and not command.timed_out and now >= command.deadline:
                command.timed_out = True
                command.kill()
        for due in [entry for entry in self.killing if entry[0] <= now]:
            self.killing.remove(due)
            self.signal_session(due[1], signal.SIGKILL)

    def next_timeout(self) -> float | None:
        deadlines = [c.deadline for c in self.commands.values() if c.deadline is not None and not c.timed_out]
        deadlines += [when for when, _ in self.killing]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def receive(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except ConnectionResetError:
            data = b""
        if not data:
            # Our end of the channel closed: the run is over, and so are its commands.
            self.open = False
            self.selector.unregister(self.fd)
            self.drop_standby()
            for command in self.commands.values():
                command.kill()
            for session in list(self.sessions.values()):
                self.hang_up(session)
                self.signal_session(session.pid, signal.SIGKILL)
            return
        self.inbox += data
        for header, body in decode_frames(self.inbox):
            if "session" in header and "id" in header:
                self.open_session(int(header["id"]), header["session"])  # type: ignore[call-overload, arg-type]
            elif "session" in header:
                self.to_session(header, body)
            elif "enter" in header:
                self.enter(header)
            elif "cancel" in header:
                self.cancel(int(header["cancel"]))  # type: ignore[call-overload]
            else:
                self.start(header, body)

    def cancel(self, request_id: int) -> None:
        """Kill command `request_id` if it still runs; it answers as it ends, to nobody."""
        command = self.commands.get(request_id)
        if command is not None:
            command.kill()

    # -- interactive sessions ---------------------------------------------------------------------

    def open_session(self, request_id: int, options: dict[str, object]) -> None:
        """Start a login shell (or `options["command"]`) on a new pseudo-terminal of `options`'s
        size, with `options["term"]` as its TERM."""
        command = options.get("command")
        argv = session_argv(None if command is None else str(command))
        environment = {**self.environment, "TERM": str(options.get("term") or "dumb"), "SHELL": argv[0]}
        try:
            master, terminal = os.openpty()
            set_window_size(master, int(options.get("rows", 24)), int(options.get("cols", 80)))  # type: ignore[call-overload]
            pid = _start_session_leader(argv, environment, terminal)
        except OSError as error:
            self.send({"id": request_id, "error": f"cannot open a terminal session: {error}"})
            return
        os.close(terminal)
        os.set_blocking(master, False)
        session = self.sessions[request_id] = Session(request_id, pid, master)
        self.send({"id": request_id, "opened": True})
        self.selector.register(master, selectors.EVENT_READ, ("terminal", session))
        self.selector.register(session.pidfd, selectors.EVENT_READ, ("session-exit", session))

    def to_session(self, header: dict[str, object], body: bytes) -> None:
        """A frame from the host for a session: keystrokes, a new size, or its user hung up."""
        session = self.sessions.get(int(header["session"]))  # type: ignore[call-overload]
        if session is None:
            return  # it ended meanwhile
        if header.get("hangup"):
            self.hang_up(session)
        elif session.master is None:
            return  # nothing reads its terminal any more
        elif isinstance(size := header.get("resize"), list):
            set_window_size(session.master, int(size[0]), int(size[1]))
        else:
            session.pending += body
            self.write_terminal(session)

    def write_terminal(self, session: Session) -> None:
        """Write what keystrokes the terminal takes now; wait until it takes the rest."""
        assert session.master is not None
        try:
            written = os.write(session.master, session.pending) if session.pending else 0
        except BlockingIOError:
            written = 0
        except OSError:  # its terminal is gone
            written = len(session.pending)
        del session.pending[:written]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if session.pending else 0)
        self.selector.modify(session.master, events, ("terminal", session))

    def read_terminal(self, session: Session) -> bool:
        """Send what the terminal printed; False once it has no more (every process of the session
        closed it)."""
        assert session.master is not None
        try:
            data = os.read(session.master, READ_SIZE)
        except BlockingIOError:
            return True
        except OSError:  # EIO: nothing holds the terminal's other end any more
            data = b""
        if data and self.open:
            self.send({"session": session.id}, data)
        return bool(data)

    def signal_session(self, sid: int, number: int) -> None:
        for pid in session_members(self.proc, sid):
            # PermissionError: not the machine's. The leader's PID may have gone to a host
            # process that leads a session of its own by the time the SIGKILL is due; it lies
            # outside the machine's user namespace, and the agent must not die of it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, number)

    def close_terminal(self, session: Session) -> None:
        if session.master is not None:
            self.selector.unregister(session.master)
            os.close(session.master)
            session.master = None

    def hang_up(self, session: Session) -> None:
        """Close the session's terminal and signal its processes SIGHUP, then SIGKILL later."""
        if not session.hung_up:
            session.hung_up = True
            self.close_terminal(session)
            self.signal_session(session.pid, signal.SIGHUP)
            self.killing.append((time.monotonic() + SESSION_GRACE, session.pid))

    def end_session(self, session: Session) -> None:
        """The session's shell exited: send what its terminal still holds, then its status."""
        _, wait_status = os.waitpid(session.pid, 0)
        status = os.waitstatus_to_exitcode(wait_status)
        if status < 0:
            status = 128 - status
        if session.master is not None:
            while self.read_terminal(session):
                if not select.select([session.master], [], [], 0)[0]:
                    break
        self.hang_up(session)
        self.selector.unregister(session.pidfd)
        os.close(session.pidfd)
        del self.sessions[session.id]
        if self.open:
            self.send({"session": session.id, "status": status})

    def enter(self, header: dict[str, object]) -> None:
        try:
            enter(
                int(header["enter"]),  # type: ignore[call-overload]
                [str(p) for p in header.get("cgroup_procs", [])],  # type: ignore[attr-defined]
                [base64.b64decode(str(f)) for f in header.get("filters", [])],  # type: ignore[attr-defined]
            )
        except OSError as error:
            self.send({"id": header["id"], "error": str(error)})
        else:
            self.drop_standby()  # started before these variables, or outside the machine
            self.environment.update(header.get("environment", {}))  # type: ignore[call-overload]
            self.send({"id": header["id"], "entered": True})

    def serve(self) -> None:
        while self.open or self.commands or self.killing:
            for key, events in self.selector.select(self.next_timeout()):
                kind, command = key.data
                if kind == "requests":
                    self.receive()
                elif kind == "standby":
                    self.drop_standby()
                elif kind == "session-exit":
                    self.end_session(command)
                elif kind == "terminal":
                    self.serve_terminal(command, events)
                elif kind == "exit":
                    self.finish(command)
                elif command.id not in self.commands:
                    continue  # it finished earlier in this round, and its pipes are closed
                elif kind == "input":
                    self.write_input(key.fd, command)
                else:
                    self.read_stream(key.fd, kind, command)
            self.expire()

    def serve_terminal(self, session: Session, events: int) -> None:
        if session.master is None:
            return  # hung up earlier in this round
        if events & selectors.EVENT_WRITE:
            self.write_terminal(session)
        if events & selectors.EVENT_READ and not self.read_terminal(session):
            self.close_terminal(session)  # the session ends when its shell exits


def spawn_agents(control: socket.socket) -> None:
    """Fork one agent per descriptor that arrives on `control`, until `control` closes.

    Forking this small, already started interpreter costs about a millisecond; starting a new one
    for every machine would cost tens.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # agents are reaped by the kernel
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 16, 1)
        except ConnectionResetError:
            return
        if not fds:
            return
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # commands are waited for
            control.close()
            os.set_inheritable(fds[0], False)  # received descriptors are; no command may inherit it
            with contextlib.suppress(BrokenPipeError):  # the host went away
                Agent(fds[0]).serve()
            os._exit(0)
        os.close(fds[0])


def serve_port(name: str) -> None:
    """In a VM: serve the virtio-serial port `name`, greeting the host first (once per boot)."""
    for port in sorted(os.listdir(VIRTIO_PORTS)):
        with open(os.path.join(VIRTIO_PORTS, port, "name")) as port_name:
            if port_name.read().strip() == name:
                break
    else:
        raise SystemExit(f"agent: no virtio port named {name!r}")
    fd = os.open(f"/dev/{port}", os.O_RDWR | os.O_CLOEXEC)
    agent = Agent(fd)
    agent.send({"hello": True})
    agent.serve()


def main() -> int:
    """`agent.py FD`: fork an agent for each socket sent over the socket FD (on the host).
    `agent.py --port NAME`: serve the virtio-serial port NAME (in a VM)."""
    if sys.argv[1] == "--port":
        serve_port(sys.argv[2])
        return 0
    spawn_agents(socket.socket(fileno=int(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
