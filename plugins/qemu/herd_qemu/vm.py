"""One machine as a QEMU virtual machine, whichever engine runs QEMU (`direct` or `libvirt`).

The machine's root file system is assembled on the host, as for a container (the host's /usr
read-only, copy-on-write /etc and /var), and shared with the guest over virtio-fs by QEMU's
virtiofsd; the guest boots the kernel herd found with an initramfs herd made (see `kernel`). The
guest talks to herd through three byte streams: its serial console, QEMU's monitor (QMP) and a
virtio-serial port where herd's agent runs. NICs are taps on the networks' bridges, made before
QEMU starts. What differs between engines (who starts QEMU, how it ends) sits behind `Hypervisor`.

KVM is used when it works here: a VM started on it is probed first, since nested KVM can be
present and yet fail as the first vCPU starts; otherwise TCG, and the log says so.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from herd.plugin import (
    Channel,
    ChannelClosed,
    ExecResult,
    HerdError,
    LaunchPlan,
    MachineError,
    MachineHandle,
    MachineSpec,
    ShellSession,
    StopMode,
    links,
    log_tail,
    text_tail,
)
from herd_qemu import confine, guest
from herd_qemu.kernel import CACHE, QBOOT, Kernel, prepare_kernel

log = logging.getLogger("herd.qemu")
QEMU = "qemu-system-x86_64"
LOG_TAIL_LINES = 10  # of QEMU's and its file server's messages, in a boot failure
JOBS_TIMEOUT = 5.0  # seconds to ask a guest that did not finish booting what it still waits for
# The guest's CPU per accelerator. Under TCG a CPU with XSAVE has the guest's kernel save and
# restore its extended state, emulated, at every context switch: a Nehalem (x86-64-v2, no XSAVE, no
# AVX) boots the host image about 0.5 s sooner than "max". On KVM, "max" is the host's own CPU.
CPU_MODELS = {"kvm": "max", "tcg": "Nehalem"}
TEARDOWN_SYNC_TIMEOUT = 10.0  # seconds a VM gets to write its journal and files out at teardown


def vcpus(machine: MachineSpec) -> int:
    """A VM's vCPUs: its `cpus`, a fraction rounded up (a vCPU is whole; QEMU's time is not capped)."""
    return math.ceil(machine.cpus)


KVM_PROBE_TIMEOUT = 10.0  # seconds; a kernel that KVM runs reaches its panic in well under one
KVM_VERDICT = CACHE.parent / "kvm-verdict"


def _kvm_probe_key(kernel: Path) -> str:
    """What the verdict on KVM depends on: this host's boot, QEMU and the kernel the probe boots."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    qemu = Path(shutil.which(QEMU) or QEMU)
    return f"{boot_id} {qemu.stat().st_mtime_ns} {kernel} {kernel.stat().st_mtime_ns}"


def _probe_kvm(kernel: Path) -> str | None:
    """Boot `kernel` on KVM without a root, until it panics (QEMU then exits, as -no-reboot says).
    None if it did; else why KVM does not work. Nested KVM can start a VM and yet fail once the
    guest kernel runs (an internal error after seconds of spinning), so only a boot proves it."""
    argv = [
        QEMU, "-accel", "kvm", "-cpu", "max", "-M", "pc", "-nodefaults", "-no-user-config",
        "-display", "none", "-serial", "null", "-no-reboot", "-m", "128",
        "-kernel", str(kernel), "-append", "panic=-1 quiet",
    ]  # fmt: skip
    if QBOOT.exists():
        argv += ["-bios", str(QBOOT)]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        process_group=0,  # the terminal's Ctrl-C is herd's, not its helpers'
    )
    try:
        _, errors = process.communicate(timeout=KVM_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
        first = errors.decode(errors="replace").strip().splitlines()
        reason = f": {first[0]}" if first else ""
        return f"a kernel did not boot on it within {KVM_PROBE_TIMEOUT:g} s{reason}"
    if process.returncode == 0:
        return None
    lines = errors.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else f"QEMU exited with status {process.returncode}"


@cache
def accelerator() -> tuple[str, str]:
    """("kvm" or "tcg", why): KVM only where a kernel actually boots on it. The verdict is kept in
    herd's cache until the host reboots (or QEMU or the kernel change): probing costs seconds
    where KVM fails."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    try:
        image = prepare_kernel().image
    except HerdError as error:
        return "tcg", f"KVM not probed: {error}"
    key = _kvm_probe_key(image)
    kept_key, why = "", ""
    with contextlib.suppress(OSError):
        kept_key, _, why = KVM_VERDICT.read_text().partition("\n")
    if kept_key != key:
        problem = _probe_kvm(image)
        why = f"KVM fails here ({problem})" if problem else ""
        with contextlib.suppress(OSError):  # a verdict not kept is only probed again
            KVM_VERDICT.parent.mkdir(parents=True, exist_ok=True)
            KVM_VERDICT.write_text(f"{key}\n{why}")
    return ("tcg", why) if why else ("kvm", "KVM works")


def choose_accelerator(wanted: str) -> tuple[str, str]:
    """The accelerator a machine asked for ("kvm", "tcg" or "auto") and why it is the one used."""
    if wanted == "tcg":
        return "tcg", "the machine asks for TCG"
    found, why = accelerator()
    if wanted == "kvm" and found != "kvm":
        raise MachineError(f"the machine asks for KVM, but {why}")
    return found, why


def log_file_tail(path: Path, count: int) -> str:
    """The last `count` lines of the log at `path`, under a line that names it."""
    try:
        empty = path.stat().st_size == 0
    except OSError as error:
        return f"No log at {path}: {error.strerror}"
    return f"The end of {path}:\n{'    (empty)' if empty else log_tail(path, count)}"


class Console:
    """The serial console: kept in the output directory, readable and writable while it runs."""

    def __init__(self, connection: socket.socket, path: Path) -> None:
        self.connection = connection
        self.path = path
        self._text: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._read, name=f"herd-console-{path.parent.name}", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        with open(self.path, "ab") as log_file, contextlib.suppress(OSError):
            while data := self.connection.recv(1 << 16):
                log_file.write(data)
                log_file.flush()
                with self._lock:
                    self._text.append(data.decode(errors="replace"))

    def text(self) -> str:
        with self._lock:
            return "".join(self._text)

    def tail(self) -> str:
        return text_tail(self.text())

    def type(self, chars: str) -> None:
        self.connection.sendall(chars.encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self.connection.close()


class Monitor(Protocol):
    """QEMU's monitor: QMP commands by name, results returned, errors raised as MachineError."""

    def command(self, name: str, **arguments: Any) -> Any: ...

    def take_events(self, timeout: float) -> list[dict[str, Any]]:
        """The QMP events since the last call; when none, wait up to `timeout` s for one."""

    def close(self) -> None: ...


class Hypervisor(Protocol):
    """What runs one VM's QEMU, and ends it."""

    def exit_status(self) -> str | None:
        """None while QEMU runs; else how it ended ("QEMU exited with status 1")."""

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for QEMU to end; True if it has."""

    def kill(self) -> None:
        """End QEMU at once, as a power cut would, and wait until it has."""

    def release(self) -> None:
        """Remove what the engine holds for this VM (cgroup, mounts, domain); QEMU has ended."""

    def log_tail(self, count: int) -> str:
        """The last `count` lines of what QEMU and its file server have said, each log named, or
        why they are not at hand."""


@dataclass(eq=False)
class VirtualMachine(MachineHandle):
    plan: LaunchPlan = field(repr=False, kw_only=True)
    hypervisor: Hypervisor = field(repr=False, kw_only=True)
    monitor: Monitor = field(repr=False, kw_only=True)
    console: Console = field(repr=False, kw_only=True)
    channel: Channel = field(repr=False, kw_only=True)
    accelerator: str = field(kw_only=True)

    def not_running(self) -> MachineError:
        how = self.hypervisor.exit_status() or "QEMU is still running"
        return MachineError(f"machine {self.name} is not running ({how}; its agent: {self.channel.closed})")

    def execute(self, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        if self.hypervisor.exit_status() is not None:
            raise self.not_running()
        try:
            return self.channel.run(command, timeout, stdin)
        except ChannelClosed:
            self.hypervisor.wait_exit(1.0)
            raise self.not_running() from None

    def open_session(self, command: str | None, term: str, rows: int, cols: int) -> ShellSession:
        if self.hypervisor.exit_status() is not None:
            raise self.not_running()
        try:
            return self.channel.open_session(command, term, rows, cols)
        except ChannelClosed:
            raise self.not_running() from None

    def wait_ready(self, seen_greetings: int, timeout: float) -> None:
        """Wait for the guest's agent to greet (once more than `seen_greetings`), then for systemd to
        finish booting. Raise with what tells how far it got if it does not within `timeout`."""
        deadline = time.monotonic() + timeout
        if not self.channel.wait_greeting(seen_greetings, timeout):
            raise self.boot_failure(
                timeout, "its agent never greeted (the guest did not get as far as starting it)"
            )
        remaining = max(deadline - time.monotonic(), 1.0)
        try:
            result = self.channel.run("systemctl is-system-running --wait", remaining)
        except ChannelClosed:
            raise self.boot_failure(timeout, "its agent greeted, then went away") from None
        if result.timed_out:
            progress = "its agent greeted, but systemd did not finish booting"
            raise self.boot_failure(timeout, progress, self._jobs())

    def _jobs(self) -> str:
        """What the guest's systemd still has to do, as its job queue says, or "" (asked with a
        short timeout: the guest may not answer)."""
        try:
            jobs = self.channel.run("systemctl list-jobs --no-pager --no-legend", JOBS_TIMEOUT)
        except ChannelClosed:
            return ""
        if jobs.timed_out or not jobs.stdout.strip():
            return ""
        return f"Its systemd's jobs:\n{text_tail(jobs.stdout.decode(errors='replace'), LOG_TAIL_LINES)}\n"

    def boot_failure(self, timeout: float, progress: str, jobs: str = "") -> MachineError:
        """Why the guest did not boot, with where it got to: `progress` (the agent's greeting),
        systemd's `jobs`, the console's end (the initramfs says each of its steps there) and QEMU's
        and virtiofsd's log."""
        what = self.hypervisor.exit_status() or f"it did not boot within {timeout:g} s"
        return MachineError(
            f"machine {self.name} did not boot: {what}; {progress}.\n{jobs}"
            f"The end of its console ({self.plan.log_dir / 'console.log'}):\n{self.console.tail()}\n"
            f"{self.hypervisor.log_tail(LOG_TAIL_LINES)}"
        )

    def reboot(self, timeout: float) -> str:
        started = time.monotonic()
        seen = self.channel.greetings
        self.execute("systemctl reboot --no-block", 30.0, b"")
        self.wait_ready(seen, timeout)
        return f"rebooted in {time.monotonic() - started:.2f} s"

    def stop(self, mode: StopMode, timeout: float) -> str:
        started = time.monotonic()
        if (ended := self.hypervisor.exit_status()) is not None:
            how = f"had stopped already ({ended})"
        elif mode is StopMode.CRASH:
            self.hypervisor.kill()
            how = "crashed (QEMU killed)"
        elif mode is StopMode.TEARDOWN:
            # A power-off costs a TCG guest seconds, and the run keeps nothing of the machine but
            # its journal and console: write the journal and every file out to the host, then end.
            with contextlib.suppress(ChannelClosed, MachineError):
                self.channel.run("journalctl --sync; sync", min(timeout, TEARDOWN_SYNC_TIMEOUT))
            self.hypervisor.kill()
            how = f"synced and stopped in {time.monotonic() - started:.2f} s"
        else:
            with contextlib.suppress(ChannelClosed, MachineError):
                self.channel.run("systemctl poweroff --no-block", 10.0)
            if self.hypervisor.wait_exit(timeout):
                how = f"powered off in {time.monotonic() - started:.2f} s"
            else:
                self.hypervisor.kill()
                how = f"did not power off within {timeout:g} s: QEMU killed"
        self.release()
        return how

    def release(self) -> None:
        self.channel.close()
        self.monitor.close()
        self.console.close()
        self.hypervisor.release()
        unprepare(self.plan)

    def boot(self) -> VirtualMachine:
        """Wait until the guest has booted; on failure end QEMU, release everything and raise."""
        try:
            self.wait_ready(0, self.plan.machine.boot_timeout)
        except BaseException:
            self.hypervisor.kill()
            self.release()
            raise
        return self


def prepare(plan: LaunchPlan) -> tuple[Kernel, str]:
    """What every engine does before QEMU starts: find the kernel, choose the accelerator, put
    herd's agent and units into the root, make the NICs' taps, keep the guest's writes from acting
    as host root's (`confine`). Returns the kernel and accelerator."""
    if shutil.which(QEMU) is None:
        raise MachineError(f"machine {plan.machine.name}: {QEMU} not found: apt-get install qemu-system-x86")
    kernel = prepare_kernel(plan.machine.options.get("kernel"))
    accel, why = choose_accelerator(plan.machine.options.get("accelerator", "auto"))
    if accel == "tcg":
        log.info("%s: %s: running under TCG (emulation, slower)", plan.machine.name, why)
    guest.prepare(plan)
    for attachment in plan.attachments:
        links.create_tap(attachment.host_link, attachment.bridge)
    confine.prepare(plan)
    return kernel, accel


def unprepare(plan: LaunchPlan) -> None:
    """Once QEMU has ended: delete the NICs' taps that `prepare` made, and give the bound host
    directories what the guest wrote into them (`confine.keep`)."""
    for attachment in plan.attachments:
        links.delete_link(attachment.host_link)
    confine.keep(plan)
