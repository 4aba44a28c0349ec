"""herd's command agent: one long-lived process per machine that runs the test's commands.

The NixOS driver starts a new `nsenter` and a login shell for every command; herd keeps this agent
running instead, so a command costs one fork and exec (about a millisecond). The agent reads
requests from a connected socket and writes responses to it, each a frame: a header of two big-endian
32-bit lengths, a JSON object of the first length, then a body of the second length.

    request  {"id": 1, "command": "echo hi", "timeout": 5.0}   body: the command's stdin
    response {"id": 1, "status": 0, "stdout": 3, "timed_out": false}   body: stdout, then stderr

Many commands may run at once; each answers when its shell exits, with whatever its stdout and
stderr held, even when a background process keeps them open. At its timeout a command's whole
process group is killed.

A first request `{"id": 1, "enter": PID, "cgroup_procs": [...], "environment": {...},
"filters": [...]}` makes the agent join those cgroups and every namespace of process PID (a
container's init), take on its capability bounding set and install the seccomp filters (each a
classic BPF program, base64, in the order to install them: the init's own, see `herd.seccomp`), and
adds the variables to the environment of the commands it runs; it answers
`{"id": 1, "entered": true}`. So every command carries what confines the machine's own processes.
A backend starts the agent early, while the machine boots, and sends this once the machine is
ready.

Agents are forked by one spawner process per herd process (`spawn_agents`), each on a socket the
host sends it. The spawner is executed as a script with `python -I -S`: it imports only the
standard library, and everything an agent needs is imported before it enters the machine, whose
file system may hold no Python at all.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
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
VIRTIO_PORTS = "/sys/class/virtio-ports"


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
    """One running command: its process, the pipes being read and written, and its deadline."""

    def __init__(
        self, request_id: int, process: subprocess.Popen[bytes], stdin: bytes, deadline: float | None
    ) -> None:
        self.id = request_id
        self.process = process
        self.pending_stdin = memoryview(stdin)
        self.deadline = deadline
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        self.pidfd = os.pidfd_open(process.pid)
        self.timed_out = False

    def kill(self) -> None:
        """Kill the command's whole process group (its shell made one of its own)."""
        self.timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Agent:
    """Serves requests arriving on `fd` (a connected socket) until the other end closes it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.selector = selectors.DefaultSelector()
        self.commands: dict[int, Command] = {}
        self.inbox = bytearray()
        self.open = True
        self.environment = dict(ENVIRONMENT)
        self.selector.register(fd, selectors.EVENT_READ, ("requests", None))

    def send(self, header: dict[str, object], body: bytes = b"") -> None:
        data = memoryview(encode_frame(header, body))
        while data:
            data = data[os.write(self.fd, data) :]

    def start(self, header: dict[str, object], body: bytes) -> None:
        request_id = int(header["id"])  # type: ignore[call-overload]
        timeout = header.get("timeout")
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", str(header["command"])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment,
                cwd="/",
                start_new_session=True,
            )
        except OSError as error:
            self.send({"id": request_id, "error": f"cannot start /bin/sh: {error.strerror}"})
            return
        deadline = time.monotonic() + float(timeout) if timeout is not None else None  # type: ignore[arg-type]
        command = Command(request_id, process, body, deadline)
        self.commands[request_id] = command
        assert process.stdin and process.stdout and process.stderr
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream.fileno(), selectors.EVENT_READ, (name, command))
        if body:
            os.set_blocking(process.stdin.fileno(), False)
            self.selector.register(process.stdin.fileno(), selectors.EVENT_WRITE, ("stdin", command))
        else:
            process.stdin.close()
        self.selector.register(command.pidfd, selectors.EVENT_READ, ("exit", command))

    def read_stream(self, fd: int, name: str, command: Command) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if data:
            command.output[name] += data
        else:
            self.selector.unregister(fd)

    def write_stdin(self, command: Command) -> None:
        stdin = command.process.stdin
        assert stdin is not None
        try:
            written = os.write(stdin.fileno(), command.pending_stdin[:READ_SIZE])
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(command.pending_stdin)
        command.pending_stdin = command.pending_stdin[written:]
        if not command.pending_stdin:
            self.selector.unregister(stdin.fileno())
            stdin.close()

    def finish(self, command: Command) -> None:
        """The command's shell exited: take what its pipes hold now and answer."""
        process = command.process
        status = process.wait()
        if status < 0:
            status = 128 - status
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            assert stream is not None
            fd = stream.fileno()
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    break
                command.output[name] += data
            if fd in self.selector.get_map():
                self.selector.unregister(fd)
            stream.close()
        if process.stdin is not None and not process.stdin.closed:
            if process.stdin.fileno() in self.selector.get_map():
                self.selector.unregister(process.stdin.fileno())
            process.stdin.close()
        self.selector.unregister(command.pidfd)
        os.close(command.pidfd)
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
                command.kill()

    def next_timeout(self) -> float | None:
        deadlines = [c.deadline for c in self.commands.values() if c.deadline is not None and not c.timed_out]
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
            for command in self.commands.values():
                command.kill()
            return
        self.inbox += data
        for header, body in decode_frames(self.inbox):
            if "enter" in header:
                self.enter(header)
            else:
                self.start(header, body)

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
            self.environment.update(header.get("environment", {}))  # type: ignore[call-overload]
            self.send({"id": header["id"], "entered": True})

    def serve(self) -> None:
        while self.open or self.commands:
            for key, _ in self.selector.select(self.next_timeout()):
                kind, command = key.data
                if kind == "requests":
                    self.receive()
                elif kind == "exit":
                    self.finish(command)
                elif kind == "stdin":
                    self.write_stdin(command)
                elif command.id in self.commands:
                    self.read_stream(key.fd, kind, command)
            self.expire()


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
