"""The Machine API a test script uses, with the NixOS test driver's names and semantics.

A machine reaches its run only through its `MachineControl` (herd.run.machinecontrol): start, stop and
`execute` work on every backend, the rest where its backend declares the capability. Waits are
built on `execute` and poll adaptively (herd.run.waiting), starting at a few milliseconds, so they return
soon after their condition holds. A machine starts on its first use if the script did not start it.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import inspect
import io
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from herd.command.terminal import interact, terminal_size
from herd.declare.spec import timeout_problem
from herd.errors import ArgumentError, CapabilityError, CommandFailed, WaitTimeout
from herd.hooks.types import Capability, ExecResult, StopMode
from herd.linux.console import ConsoleFollower
from herd.report.log import printable
from herd.run.waiting import poll

if TYPE_CHECKING:
    from herd.declare.spec import MachineSpec
    from herd.run.machinecontrol import MachineControl

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_TIMEOUT = 900.0  # seconds, as in the NixOS test driver
STDERR_TAIL_LINES = 10  # lines of a failed command's standard error quoted in the error
# What `execute` returns, as the NixOS test driver does: the status of a command past its timeout
# (coreutils' `timeout`), and the status in place of the real one when asked not to check it or
# not to wait for the output.
TIMED_OUT_STATUS = 124
UNCHECKED_STATUS = -1
UNWAITED_STATUS = -2
KEY_DELAY = 0.01  # seconds after each key or character typed, as in the NixOS test driver
POWER_OFF_POLL = 0.1  # seconds between two probes of `wait_for_shutdown`
CONSOLE_READ_SIZE = 4096  # bytes of the terminal's input read at once by `console_interact`


def needs(capability: Capability) -> Callable[[F], F]:
    """Mark a Machine method that needs `capability`: it fails clearly, and at once, without it."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def checked(self: Machine, *args: Any, **kwargs: Any) -> Any:
            self.require_capability(capability, method.__name__)
            return method(self, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def _check_port(name: str, port: object, lowest: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not lowest <= port <= 65535:
        free = ", or 0 for a free one" if lowest == 0 else ""
        raise ArgumentError(f"forward_port: {name}: expected a port number (1-65535{free}), got {port!r}")


class Machine:
    """One machine of the test, as the script sees it (`machine1.succeed("true")`)."""

    def __init__(self, spec: MachineSpec, control: MachineControl) -> None:
        self.spec = spec
        self.name = spec.name
        self._control = control

    def __repr__(self) -> str:
        return f"<Machine {self.name} ({self.spec.backend})>"

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The name of the backend that runs this machine."""
        return self.spec.backend or "?"

    def is_up(self) -> bool:
        """Whether the machine is running.

        Example::

            machine.is_up()  # True
        """
        return self._control.is_running()

    def start(self, allow_reboot: bool = False) -> None:
        """Boot the machine and wait until it is ready; nothing happens if it runs already.

        `allow_reboot=True` says the test reboots the machine: its backend must have the `reboot`
        capability. (Machines may always reboot; a reboot never powers one off.)

        Example::

            machine.start()
        """
        if allow_reboot:
            self.require_capability(Capability.REBOOT, "start(allow_reboot=True)")
        self._control.start()

    def shutdown(self) -> None:
        """Power the machine off cleanly and wait until it is down. `start()` boots it again.

        Example::

            machine.shutdown()
        """
        self._control.stop(StopMode.CLEAN)

    def crash(self) -> None:
        """Kill the machine at once, as a power cut would. `start()` boots it again.

        Example::

            machine.crash()
        """
        self._control.stop(StopMode.CRASH)

    def require_capability(self, capability: Capability, method: str) -> None:
        """Raise a clear `CapabilityError` unless this machine's backend declares `capability`."""
        info = self._control.backend_info
        if capability in info.capabilities:
            return
        others = self._control.backends_with(capability)
        hint = (
            f"backends that can: {', '.join(others)}"
            if others
            else "no installed backend can (see `herd plugins`)"
        )
        call = method if method.endswith(")") else f"{method}()"  # a name, or a call with arguments
        raise CapabilityError(
            f"{self.name}.{call} needs the {capability.value!r} capability, which backend "
            f"{self.backend!r} ({info.kind.value}) does not have; {hint}"
        )

    # -- arguments --------------------------------------------------------------------------------

    def _check_command(self, command: str) -> None:
        """Refuse a command the machine's shell cannot be given: `sh -c` takes a C string."""
        if "\0" in command:
            raise ArgumentError(f"{self.name}: command {command!r} holds a NUL byte, which a command cannot")

    def _check_timeout(self, timeout: float) -> None:
        """Refuse a timeout herd cannot wait for (NaN, infinity, beyond `herd.declare.spec.MAX_TIMEOUT`)."""
        problem = timeout_problem(timeout)
        if problem is not None:
            raise ArgumentError(f"{self.name}: timeout: {problem}")

    def _check_commands(self, commands: tuple[str, ...], timeout: float | None) -> None:
        """Check every command of `succeed` or `fail` before the first one runs."""
        for command in commands:
            self._check_command(command)
        if timeout is not None:
            self._check_timeout(timeout)

    # -- commands ---------------------------------------------------------------------------------

    def _run(self, command: str, timeout: float | None, stdin: bytes | str = b"") -> ExecResult:
        """Run a command; a command past its timeout was killed and comes back `timed_out`."""
        self._check_command(command)
        if timeout is not None:
            self._check_timeout(timeout)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return self._control.execute(command, timeout, data)

    def _timed_out(self, command: str, timeout: float | None) -> WaitTimeout:
        return WaitTimeout(f"{self.name}: command `{command}` did not finish within {timeout:g} s")

    def _start_in_background(self, command: str, stdin: bytes | str) -> None:
        """Start `command` in the background of the machine's shell, which exits at once: nobody
        waits for the command, reads its output or bounds its time."""
        if stdin:
            raise ArgumentError(f"{self.name}: stdin cannot reach a command run with check_output=False")
        self._check_command(command)
        self._run(f"(\n{command}\n) >/dev/null 2>&1 &", DEFAULT_TIMEOUT)

    def execute(
        self,
        command: str,
        check_return: bool = True,
        check_output: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        stdin: bytes | str = b"",
    ) -> tuple[int, str]:
        """Run a shell command as root; return its exit status and standard output.

        Standard error goes to the log. A command past `timeout` seconds (None: no limit) is killed
        with everything it started, and its status is 124. With `check_return=False` the status is
        -1 instead of the command's own; with `check_output=False` the command is started in the
        background of the machine, and `execute` returns `(-2, "")` at once, without waiting for it
        (for a command that powers the machine off, say).

        Example::

            status, out = machine.execute("cat /etc/hostname")
        """
        if not check_output:
            self._start_in_background(command, stdin)
            return UNWAITED_STATUS, ""
        result = self._run(command, timeout, stdin)
        status = TIMED_OUT_STATUS if result.timed_out else result.status
        return status if check_return else UNCHECKED_STATUS, result.stdout.decode(errors="replace")

    def _expect(self, command: str, success: bool, timeout: float | None, stdin: bytes | str = b"") -> str:
        """Run `command`; return its output if it succeeded (or failed, when `success` is False).
        A command past its timeout has failed; `succeed` raises `WaitTimeout` for it."""
        result = self._run(command, timeout, stdin)
        output = result.stdout.decode(errors="replace")
        if result.timed_out:
            if success:
                raise self._timed_out(command, timeout)
            return output
        if (result.status == 0) == success:
            return output
        if success:
            message = f"{self.name}: command `{command}` failed (exit status {result.status})"
        else:
            message = f"{self.name}: command `{command}` unexpectedly succeeded"
        errors = printable(result.stderr.decode(errors="replace")).strip().splitlines()
        if errors:
            quoted = "\n".join(f"    {line}" for line in errors[-STDERR_TAIL_LINES:])
            message += f"; its standard error ends with:\n{quoted}"
        raise CommandFailed(message, result.status, output)

    def succeed(self, *commands: str, timeout: float | None = None) -> str:
        """Run each command; fail if any exits non-zero. Returns their joined standard output.

        `timeout` bounds each command; None: no limit.

        Example::

            machine.succeed("systemctl is-active nginx", "curl -sf http://localhost")
        """
        self._check_commands(commands, timeout)
        return "".join(self._expect(command, True, timeout) for command in commands)

    def fail(self, *commands: str, timeout: float | None = None) -> str:
        """Run each command; fail if any exits zero. Returns their joined standard output.

        A command killed at its `timeout` (None: no limit) counts as failed, as its status is 124.

        Example::

            machine.fail("curl -sf http://localhost:8080")
        """
        self._check_commands(commands, timeout)
        return "".join(self._expect(command, False, timeout) for command in commands)

    def _wait_for_status(self, command: str, success: bool, timeout: float, what: str | None = None) -> str:
        """Repeat `command` until it succeeds (or fails); `what` names the wait in the log and its
        error, else the command does."""
        self._check_command(command)
        self._check_timeout(timeout)
        deadline = time.monotonic() + timeout

        def attempt(_last_try: bool) -> str | None:
            remaining = max(deadline - time.monotonic(), 0.001)
            result = self._run(command, remaining)
            if result.timed_out:  # cut off by the wait's own deadline: neither success nor failure
                return None
            return result.stdout.decode(errors="replace") if (result.status == 0) == success else None

        what = what or f"`{command}` to {'succeed' if success else 'fail'}"
        return poll(attempt, timeout, what, self.name, log=self._control.log)

    def wait_until_succeeds(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Repeat a command until it succeeds; return its output.

        Example::

            machine.wait_until_succeeds("curl -sf http://server")
        """
        return self._wait_for_status(command, True, timeout)

    def wait_until_fails(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Repeat a command until it fails; return its output.

        Example::

            machine.wait_until_fails("pgrep -x sleep")
        """
        return self._wait_for_status(command, False, timeout)

    def sleep(self, secs: float) -> None:
        """Pause the script for `secs` seconds of the machine's time: `sleep` runs in the machine.

        Example::

            machine.sleep(0.5)
        """
        self.succeed(f"sleep {float(secs)!r}")

    def log(self, msg: str) -> None:
        """Write a line to the run's log under this machine's name.

        Example::

            machine.log("now breaking the network")
        """
        self._control.log.info(msg, machine=self.name)

    # -- systemd ----------------------------------------------------------------------------------

    @needs(Capability.SYSTEMD)
    def systemctl(self, q: str, user: str | None = None) -> tuple[int, str]:
        """Run `systemctl q` (for `user`'s manager when given); return status and output.

        Example::

            machine.systemctl("restart nginx")
        """
        if user is not None:
            inner = f"XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user {q}"
            return self.execute(f"su -l {shlex.quote(user)} --shell /bin/sh -c {shlex.quote(inner)}")
        return self.execute(f"systemctl {q}")

    @needs(Capability.SYSTEMD)
    def get_unit_info(self, unit: str, user: str | None = None) -> dict[str, str]:
        """All properties of a unit, from `systemctl show`.

        Example::

            machine.get_unit_info("nginx.service")["ActiveState"]  # 'active'
        """
        status, output = self.systemctl(f"--no-pager show {shlex.quote(unit)}", user)
        if status != 0:
            raise CommandFailed(f"{self.name}: cannot read the properties of unit {unit!r}", status, output)
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    @needs(Capability.SYSTEMD)
    def get_unit_property(self, unit: str, property: str, user: str | None = None) -> str:
        """One property of a unit.

        Example::

            machine.get_unit_property("nginx.service", "MainPID")
        """
        return self.get_unit_info(unit, user).get(property, "")

    @needs(Capability.SYSTEMD)
    def require_unit_state(self, unit: str, require_state: str = "active") -> None:
        """Fail unless the unit's ActiveState is `require_state`.

        Example::

            machine.require_unit_state("nginx.service", "active")
        """
        state = self.get_unit_property(unit, "ActiveState")
        if state != require_state:
            raise CommandFailed(
                f"{self.name}: unit {unit!r} is {state!r}, expected {require_state!r}", 1, state
            )

    @needs(Capability.SYSTEMD)
    def wait_for_unit(self, unit: str, user: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until a unit is active. Fails at once when it failed, or stays inactive with no job.

        Example::

            machine.wait_for_unit("nginx.service")
        """
        self._check_timeout(timeout)
        full = unit if "." in unit else f"{unit}.service"

        def active(_last_try: bool) -> bool:
            info = self.get_unit_info(full, user)
            state = info.get("ActiveState", "")
            if info.get("LoadState") == "not-found":
                raise CommandFailed(f"{self.name}: unit {full!r} does not exist", 1, state)
            if state == "failed":
                raise CommandFailed(f"{self.name}: unit {full!r} reached state 'failed'", 1, state)
            if state == "inactive":
                _, jobs = self.systemctl("list-jobs --no-legend --full", user)
                if not jobs.strip() and self.get_unit_property(full, "ActiveState", user) == "inactive":
                    raise CommandFailed(
                        f"{self.name}: unit {full!r} is inactive and there are no pending jobs", 1, state
                    )
            return state == "active"

        poll(active, timeout, f"unit {full!r} to be active", self.name, log=self._control.log)

    @needs(Capability.SYSTEMD)
    def start_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        """`systemctl start jobname` (the name goes to the shell as it is: "a b" starts two units).

        Example::

            machine.start_job("nginx.service")
        """
        return self.systemctl(f"start {jobname}", user)

    @needs(Capability.SYSTEMD)
    def stop_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        """`systemctl stop jobname` (the name goes to the shell as it is).

        Example::

            machine.stop_job("nginx.service")
        """
        return self.systemctl(f"stop {jobname}", user)

    # -- console, keyboard, screen (VMs) ---------------------------------------------------------

    @needs(Capability.REBOOT)
    def reboot(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Reboot the machine cleanly; return when it is ready again.

        Example::

            machine.reboot()
        """
        self._check_timeout(timeout)
        how = self._control.reboot(timeout)
        self._control.log.info(str(how), machine=self.name)

    def wait_for_console_text(self, regex: str, timeout: float | None = None) -> str:
        """Wait until the machine's console, since it started, shows text matching `regex`; return
        the match. Works on every backend (see `get_console_log`). `timeout=None` waits as long
        as it takes.

        Example::

            machine.wait_for_console_text("login:")
        """
        if timeout is None:
            timeout = math.inf
        else:
            self._check_timeout(timeout)
        pattern = re.compile(regex)
        self._control.start()  # boots the machine on first use, as every command does

        def seen(_last_try: bool) -> str | None:
            match = pattern.search(self._control.console_text())
            return match.group(0) if match else None

        return poll(seen, timeout, f"console text matching {regex!r}", self.name, log=self._control.log)

    @needs(Capability.CONSOLE)
    def send_chars(self, chars: str, delay: float | None = KEY_DELAY) -> None:
        """Type `chars` on the machine's console, pausing `delay` seconds after each character
        (None or 0: all at once).

        Example::

            machine.send_chars("root\\n")
        """
        if not delay:
            self._control.send_chars(chars)
            return
        for char in chars:
            self._control.send_chars(char)
            time.sleep(delay)

    @needs(Capability.KEYBOARD)
    def send_key(self, key: str, delay: float | None = KEY_DELAY, log: bool | None = True) -> None:
        """Press a key or a combination, QEMU style: "ret", "ctrl-alt-delete", "shift-a"; then
        pause `delay` seconds (None: not at all). With `log`, the key goes to the run's log.

        Example::

            machine.send_key("ctrl-alt-delete")
        """
        if log:
            self._control.log.info(f"sending key {key!r}", machine=self.name)
        self._control.send_keys(key.split("-"))
        if delay:
            time.sleep(delay)

    @needs(Capability.SCREENSHOT)
    def screenshot(self, filename: str) -> Path:
        """Save the screen as PNG: `filename` in the run's output directory, unless it is a path;
        `.png` is added to a name without a dot.

        Example::

            machine.screenshot("login-screen")
        """
        name = filename if "." in filename else f"{filename}.png"
        path = Path(name) if "/" in name else self._control.output_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._control.screenshot(path)
        self._control.log.info(f"screenshot: {path}", machine=self.name)
        return path

    # -- networks ---------------------------------------------------------------------------------

    def block(self, network: str | None = None) -> None:
        """Cut the machine off a network (all of its networks when None): its link goes down.

        It stays cut off until `unblock()`, through reboots and `disconnect()`/`connect()`.

        Example::

            server.block()
        """
        self._control.block(network, True)

    def unblock(self, network: str | None = None) -> None:
        """Undo `block()`.

        Example::

            server.unblock()
        """
        self._control.block(network, False)

    def impair(
        self,
        network: str | None = None,
        *,
        delay: float = 0,
        jitter: float = 0,
        loss: float = 0,
        rate: int | str | None = None,
    ) -> None:
        """Degrade what the machine receives on a network (all of its networks when None).

        `delay` and `jitter` in milliseconds, `loss` in percent, `rate` in bits per second or as
        text ("2mbit"). Impair both ends for a symmetric link. Replaces an earlier impairment;
        lasts until `unimpair()`, through reboots and `disconnect()`/`connect()`.
        Delay, jitter and loss need the kernel's netem (`herd doctor` says whether it is there;
        without it this raises `herd.LinkError`); a rate alone works on any kernel.

        Example::

            client.impair(delay=100, loss=1)
        """
        self._control.impair(network, {"delay": delay, "jitter": jitter, "loss": loss, "rate": rate})

    def unimpair(self, network: str | None = None) -> None:
        """Take an impairment away.

        Example::

            client.unimpair()
        """
        self._control.unimpair(network)

    def forward_port(self, host_port: int = 8080, guest_port: int = 80, network: str | None = None) -> int:
        """Make port `guest_port` of the machine reachable at 127.0.0.1:`host_port` on the host;
        return the host port. A `host_port` of 0 takes a free one, so that tests run in parallel
        (pytest-xdist's workers) never compete for a fixed port.

        Example::

            server.forward_port(8080, 80)
            port = server.forward_port(0, 80)
        """
        _check_port("host_port", host_port, lowest=0)
        _check_port("guest_port", guest_port, lowest=1)
        return self._control.forward_port(host_port, guest_port, network)

    @needs(Capability.HOTPLUG)
    def connect(self, network: str) -> None:
        """Plug the running machine into one of the test's networks; names are updated everywhere.

        It comes back as it left: on the same NIC name and address, and still blocked or impaired
        there if it was when disconnected (until `unblock()`/`unimpair()`), as after a reboot.

        Example::

            laptop.connect("wifi")
        """
        self._control.connect(network)

    @needs(Capability.HOTPLUG)
    def disconnect(self, network: str) -> None:
        """Unplug the running machine from a network.

        Its block and impairment on that network, if any, are kept for when it is connected again
        (see `connect()`); while it is off the network they cannot be changed.

        Example::

            laptop.disconnect("wifi")
        """
        self._control.disconnect(network)

    # -- files and ports --------------------------------------------------------------------------

    def wait_for_file(self, filename: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until a file exists in the machine.

        Example::

            machine.wait_for_file("/run/nginx.pid")
        """
        self._wait_for_status(f"test -e {shlex.quote(filename)}", True, timeout, f"file {filename} to exist")

    def _port_probe(self, port: int, addr: str) -> str:
        target = f"{shlex.quote(addr)} {int(port)}"
        return (
            "if command -v bash >/dev/null; then "
            f"bash -c 'exec 3<>/dev/tcp/$0/$1' {target} 2>/dev/null; "
            f"else nc -z {target}; fi"
        )

    def wait_for_open_port(
        self, port: int, addr: str = "localhost", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until something accepts TCP connections on `addr`:`port` inside the machine.

        Example::

            machine.wait_for_open_port(80)
        """
        self._wait_for_status(self._port_probe(port, addr), True, timeout, f"port {port} on {addr} to open")

    def wait_for_closed_port(
        self, port: int, addr: str = "localhost", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until nothing accepts TCP connections on `addr`:`port` inside the machine.

        Example::

            machine.wait_for_closed_port(80)
        """
        self._wait_for_status(self._port_probe(port, addr), False, timeout, f"port {port} on {addr} to close")

    def copy_from_host(self, source: str | os.PathLike[str], target: str) -> None:
        """Copy a file or directory from the host to `target` in the machine (parents are made).

        Example::

            machine.copy_from_host("fixtures/site.conf", "/etc/nginx/sites-enabled/site.conf")
        """
        import tarfile

        source_path = Path(source)
        if not source_path.exists():
            raise FileNotFoundError(f"copy_from_host: {source_path} does not exist on the host")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(source_path, arcname=os.path.basename(target.rstrip("/")))
        parent = os.path.dirname(target.rstrip("/")) or "/"
        self.succeed_with_input(
            f"mkdir -p {shlex.quote(parent)} && tar -x --no-same-owner -C {shlex.quote(parent)}",
            buffer.getvalue(),
        )

    def copy_from_machine(self, source: str, target_dir: str = "") -> Path:
        """Copy a file or directory from the machine into the run's output directory.

        Returns the path on the host: `<output>/<target_dir>/<name of source>`.

        Example::

            machine.copy_from_machine("/var/log/nginx/access.log")
        """
        import tarfile

        parent, name = os.path.split(source.rstrip("/"))
        archive_command = f"tar -c -C {shlex.quote(parent or '/')} {shlex.quote(name)}"
        result = self._run(archive_command, DEFAULT_TIMEOUT)
        if result.timed_out:
            raise self._timed_out(archive_command, DEFAULT_TIMEOUT)
        if result.status != 0:
            message = printable(result.stderr.decode(errors="replace")).strip()
            raise CommandFailed(f"{self.name}: cannot copy {source}: {message}", result.status, "")
        destination = self._control.output_dir / target_dir
        destination.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
            archive.extractall(destination, filter="tar")
        return destination / name

    copy_from_vm = copy_from_machine

    def succeed_with_input(self, command: str, stdin: bytes | str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Run one command with `stdin` as its input; fail if it exits non-zero.

        Example::

            machine.succeed_with_input("cat > /etc/motd", "hello\\n")
        """
        return self._expect(command, True, timeout, stdin)

    # -- the NixOS test driver's other methods --------------------------------------------------

    @contextlib.contextmanager
    def nested(self, message: str, attrs: Mapping[str, str] | None = None) -> Iterator[None]:
        """A named, timed section of the log under this machine's name, as `subtest` is for the
        script; `attrs` are added to its title.

        Example::

            with server.nested("filling the database"):
                server.succeed("psql -f /srv/fixtures.sql")
        """
        extra = "".join(f" {key}={value}" for key, value in (attrs or {}).items())
        with self._control.log.section(f"{self.name}: {message}{extra}"):
            yield

    def wait_for_shutdown(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the machine has powered off; it does not power it off (`shutdown()` does).

        herd sees the machine go when it stops running commands, then waits for it to end (the
        run's stop timeout, after which its backend escalates) and releases it; `start()` boots it
        again. Returns at once for a machine that is not running.

        Example::

            machine.execute("systemctl poweroff --no-block")
            machine.wait_for_shutdown()
        """
        self._check_timeout(timeout)
        if not self._control.is_running():
            return
        deadline = time.monotonic() + timeout
        while self._control.responds():
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"{self.name}: timed out after {timeout:g} s waiting for it to power off")
            time.sleep(POWER_OFF_POLL)
        self._control.stop(StopMode.CLEAN)

    def wait_for_open_unix_socket(
        self, addr: str, is_datagram: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until something listens on the UNIX-domain socket `addr` inside the machine (a
        stream socket, or a datagram socket when `is_datagram`).

        Example::

            machine.wait_for_open_unix_socket("/run/postgresql/.s.PGSQL.5432")
        """
        kind = "SOCK_DGRAM" if is_datagram else "SOCK_STREAM"
        flags = "-uU" if is_datagram else "-U"
        path = shlex.quote(addr)
        probe = (
            "if command -v python3 >/dev/null; then python3 -c "
            + shlex.quote(
                f"import socket, sys; socket.socket(socket.AF_UNIX, socket.{kind}).connect(sys.argv[1])"
            )
            + f" {path} 2>/dev/null; else nc -z {flags} {path}; fi"
        )
        self._wait_for_status(probe, True, timeout, f"UNIX socket {addr} to open")

    def copy_from_host_via_shell(self, source: str | os.PathLike[str], target: str) -> None:
        """Copy one file from the host to `target` in the machine through a command's input
        (its parent directories are made). `copy_from_host` copies directories too.

        Example::

            machine.copy_from_host_via_shell("fixtures/site.conf", "/etc/nginx/site.conf")
        """
        data = Path(source).read_bytes()
        quoted = shlex.quote(target)
        self.succeed_with_input(f'mkdir -p "$(dirname {quoted})" && cat > {quoted}', data)

    def get_console_log(self) -> str:
        """Everything the machine's console printed since it last started, on every backend: what
        its init and kernel print, and what is written to `/dev/console`.

        Example::

            assert "Reached target" in machine.get_console_log()
        """
        return self._control.console_text()

    @needs(Capability.SHELL)
    def shell_interact(self) -> None:
        """Connect herd's terminal to a login shell on the machine (a real terminal: job control,
        colours, its size following the window) until the shell exits; then the script goes on.
        For writing a test, not in one that runs unattended. From another terminal, `herd shell RUN
        MACHINE` does the same while the run lives.

        Example::

            machine.shell_interact()  # look around; `exit` (or Ctrl-D) to go on
        """
        rows, cols = terminal_size(0)
        session = self._control.open_session(None, os.environ.get("TERM", "dumb"), rows, cols)
        self._control.log.info("shell_interact: exit the shell to go on", machine=self.name)
        status = interact(session)
        self._control.log.info(f"shell_interact: the shell exited with status {status}", machine=self.name)

    @needs(Capability.CONSOLE)
    def send_console(self, chars: str) -> None:
        """Type `chars` on the machine's console (its serial console on a VM), as `send_chars`.

        Example::

            machine.send_console("\\n\\nsystemctl default\\n")
        """
        self._control.send_chars(chars)

    @needs(Capability.CONSOLE)
    def console_interact(self) -> None:
        """Forward what is typed on the terminal to the machine's console and print what the
        console prints, until Ctrl-D; for `herd run --interactive`, as in the NixOS test driver.

        The terminal stays in line mode: a line goes to the machine when Enter is pressed, and
        Ctrl-C stops the forwarding as it stops any command of the session.

        Example::

            machine.console_interact()
        """
        self._control.start()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with self._control.log.muted(self.name, "console"):
            follower = ConsoleFollower(self._control.console_text, sys.stdout)
            try:
                while typed := os.read(sys.stdin.fileno(), CONSOLE_READ_SIZE):
                    self._control.send_chars(decoder.decode(typed))
            finally:
                follower.stop()
        self._control.log.info("console closed", machine=self.name)

    @needs(Capability.MONITOR)
    def send_monitor_command(self, command: str) -> str:
        """Run a command on the VM's QEMU monitor (HMP); return what it printed.

        Example::

            machine.send_monitor_command("info status")  # 'VM status: running\\r\\n'
        """
        answer = self._control.monitor_command(command)
        self._control.log.info(f"monitor: {command}", machine=self.name, show=False)
        return answer

    @needs(Capability.MONITOR)
    def wait_for_qmp_event(
        self, event_filter: Callable[[dict[str, Any]], bool], timeout: float = 600.0
    ) -> dict[str, Any]:
        """Wait for a QMP event of the VM's QEMU that `event_filter` accepts, and return it; the
        events it refuses meanwhile are dropped.

        Example::

            machine.wait_for_qmp_event(lambda event: event["event"] == "STOP", timeout=30)
        """
        self._check_timeout(timeout)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            events = self._control.qmp_events(remaining)
            for event in events:
                if event_filter(event):
                    return dict(event)
        raise WaitTimeout(f"{self.name}: timed out after {timeout:g} s waiting for a QMP event")

    @staticmethod
    def _tty_number(tty: int | str) -> int:
        if isinstance(tty, bool) or not str(tty).isdigit() or not 1 <= int(tty) <= 63:
            raise ArgumentError(f"tty {tty!r} is not the number of a virtual terminal (1 to 63)")
        return int(tty)

    @needs(Capability.KERNEL)
    def get_tty_text(self, tty: int | str) -> str:
        """The text on virtual terminal `tty` (its screen, from `/dev/vcs<tty>`), one line per row.

        Example::

            machine.get_tty_text(1)
        """
        number = self._tty_number(tty)
        columns = f"$(stty -F /dev/tty{number} size | cut -d' ' -f2)"
        return self.succeed(f"fold -w {columns} /dev/vcs{number}")

    @needs(Capability.KERNEL)
    def wait_until_tty_matches(self, tty: int | str, regexp: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the text on virtual terminal `tty` matches `regexp`.

        Example::

            machine.wait_until_tty_matches(1, "login: ")
        """
        self._check_timeout(timeout)
        pattern = re.compile(regexp)
        poll(
            lambda _last_try: pattern.search(self.get_tty_text(tty)) is not None,
            timeout,
            f"tty{tty} to match {regexp!r}",
            self.name,
            log=self._control.log,
        )

    @needs(Capability.KERNEL)
    def dump_tty_contents(self, tty: int | str) -> None:
        """Write the text on virtual terminal `tty` to the run's log (for debugging).

        Example::

            machine.dump_tty_contents(1)
        """
        self.log(f"tty{tty}:\n{self.get_tty_text(tty)}")


@functools.cache
def script_attributes() -> frozenset[str]:
    """Every attribute a script may read on a machine: the `Machine` class's and those its
    methods set on the instance (what the script check knows of machines)."""
    assigned = re.findall(r"self\.([A-Za-z_]\w*)\s*(?::[^=\n]+)?=(?!=)", inspect.getsource(Machine))
    return frozenset(dir(Machine)) | frozenset(assigned)
