"""The libvirt engine: the same VM as the direct engine's, run as a transient libvirt domain.

For hosts whose VMs libvirt manages, local or remote: the machine option `uri` names the
hypervisor (default qemu:///system). libvirt runs QEMU and virtiofsd on that host, so the kernel,
the initramfs and the machine's root directory that herd prepares must exist at the same paths
there, and the console and agent sockets herd listens on must be reachable by its QEMU: in
practice a remote URI needs a host that shares /run/herd and /var/cache/herd with this one.

Start: `vm.prepare` (kernel, accelerator, agent, taps), the root assembled on the host
(`hostroot`), herd listening on the console and agent sockets, then the domain created from
`domainxml` with VIR_DOMAIN_START_AUTODESTROY; once libvirt returns, QEMU has connected to both
sockets. QMP is libvirt's: herd's monitor commands (send-key, screendump) pass through
`libvirt_qemu.qemuMonitorCommand`. The domain ends by itself when the guest powers off; its end
is learnt from libvirt's lifecycle events (`connection.Watch`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
import uuid as uuids
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herd.plugin import Channel, HerdError, LaunchPlan, MachineError
from herd_qemu import confine, connection, domainxml, hostroot
from herd_qemu.vm import Console, VirtualMachine, log_file_tail, prepare, unprepare

ACCEPT_TIMEOUT = 30.0  # seconds QEMU gets to connect once libvirt says the domain runs
POLL_INTERVAL = 0.5  # how often a wait on the domain's end also asks libvirt, should an event be lost


@dataclass(eq=False)
class Domain:
    """A Hypervisor: the transient domain of one machine, and the root mounted for its file server."""

    plan: LaunchPlan
    uri: str
    domain: Any  # libvirt.virDomain
    watch: connection.Watch
    mounted: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.domain.name())

    def _ask(self) -> None:
        """Ask libvirt whether the domain still runs, for when an event did not come; an answer
        that is no answer (libvirtd unreachable) changes nothing."""
        try:
            active = self.domain.isActive()
        except Exception as error:
            if not connection.is_gone(error):
                return
            active = False
        if not active:
            self.watch.stop(f"its domain {self.name} is gone")

    def exit_status(self) -> str | None:
        return self.watch.how if self.watch.stopped.is_set() else None

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.watch.stopped.wait(max(min(POLL_INTERVAL, deadline - time.monotonic()), 0)):
            self._ask()
            if time.monotonic() >= deadline:
                break
        return self.watch.stopped.is_set()

    def kill(self) -> None:
        try:
            self.domain.destroy()  # returns once QEMU is gone
        except Exception as error:
            if not connection.is_gone(error):
                # Whatever happens next, the root must not stay mounted: the driver removes the
                # machine's state directory, and a removal that went down its binds would delete
                # the files they show.
                hostroot.disassemble(self.mounted)
                self.mounted = []
                raise MachineError(
                    f"machine {self.plan.machine.name}: cannot destroy {self.name}: {error}"
                ) from None
        self.watch.stop(f"its domain {self.name} was destroyed")

    def release(self) -> None:
        if not self.watch.stopped.is_set():
            self.kill()
        connection.unwatch(self.domain.UUIDString())
        hostroot.disassemble(self.mounted)
        _keep_log(self.plan, self.uri, self.name)
        self.plan.cgroup.remove()

    def log_tail(self, count: int) -> str:
        if not connection.is_local(self.uri):
            return f"QEMU's and virtiofsd's logs are libvirtd's, on the host of {self.uri}"
        return "\n".join(log_file_tail(path, count) for path in connection.log_files(self.name))


def _keep_log(plan: LaunchPlan, uri: str, name: str) -> None:
    """Move libvirt's logs of the domain (QEMU's command line and errors, then virtiofsd's) into
    the run's output, as the direct engine's qemu.log; only a local libvirtd's logs are at hand."""
    if not connection.is_local(uri):
        return
    for log in connection.log_files(name):
        if log.is_file():
            with contextlib.suppress(OSError), open(plan.log_dir / "qemu.log", "ab") as kept:
                with open(log, "rb") as source:
                    shutil.copyfileobj(source, kept)
                log.unlink()


KEPT_EVENTS = 1000  # QMP events kept until `take_events` asks: the oldest go first


class Monitor:
    """QEMU's monitor as libvirt lends it: QMP commands passed through to the domain's QEMU, and
    its events passed on by libvirt from the monitor's making until it is closed."""

    def __init__(self, domain: Any, machine: str) -> None:
        import libvirt_qemu  # libvirt-python's, loaded with it

        self.domain = domain
        self.machine = machine
        self._events: deque[dict[str, Any]] = deque(maxlen=KEPT_EVENTS)
        self._arrived = threading.Condition()
        self._callback: int | None = libvirt_qemu.qemuMonitorEventRegister(
            domain.connect(), domain, None, self._event, None, 0
        )

    def command(self, name: str, **arguments: Any) -> Any:
        import libvirt_qemu  # libvirt-python's, loaded with it

        libvirt = connection.module()
        request: dict[str, Any] = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        try:
            reply = json.loads(libvirt_qemu.qemuMonitorCommand(self.domain, json.dumps(request), 0))
        except libvirt.libvirtError as error:
            raise MachineError(f"machine {self.machine}: QEMU (through libvirt): {name}: {error}") from None
        if "error" in reply:
            problem = reply["error"]
            raise MachineError(f"machine {self.machine}: QEMU: {name}: {problem.get('desc', problem)}")
        return reply.get("return")

    def _event(
        self,
        _conn: Any,
        _domain: Any,
        event: str,
        seconds: int,
        micros: int,
        details: str | None,
        _opaque: Any,
    ) -> None:
        message = {
            "event": event,
            "data": json.loads(details) if details else {},
            "timestamp": {"seconds": seconds, "microseconds": micros},
        }
        with self._arrived:
            self._events.append(message)
            self._arrived.notify_all()

    def take_events(self, timeout: float) -> list[dict[str, Any]]:
        """The QMP events since the last call; when there are none, wait up to `timeout` seconds
        for one."""
        with self._arrived:
            self._arrived.wait_for(lambda: bool(self._events), timeout)
            taken = list(self._events)
            self._events.clear()
        return taken

    def close(self) -> None:
        """Stop passing events on; the monitor itself is libvirt's."""
        if self._callback is not None:
            import libvirt_qemu

            with contextlib.suppress(connection.module().libvirtError):
                libvirt_qemu.qemuMonitorEventDeregister(self.domain.connect(), self._callback)
            self._callback = None


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(ACCEPT_TIMEOUT)
    return listener


def _create(plan: LaunchPlan, uri: str, xml: str) -> Any:
    """Create the transient domain; MachineError with libvirt's words (QEMU's errors) if it fails."""
    libvirt = connection.module()
    try:
        return connection.connect(uri).createXML(xml, libvirt.VIR_DOMAIN_START_AUTODESTROY)
    except libvirt.libvirtError as error:
        raise MachineError(
            f"machine {plan.machine.name}: libvirt at {uri} did not start its domain: "
            f"{error.get_error_message()}"
        ) from None


def start(plan: LaunchPlan) -> VirtualMachine:
    """Boot the VM of `plan` as a libvirt domain; return once its systemd has finished booting."""
    uri = plan.machine.options.get("uri", connection.DEFAULT_URI)
    try:
        connection.connect(uri)  # before anything is made: an unreachable libvirt costs nothing
    except HerdError as error:
        raise MachineError(f"machine {plan.machine.name}: {error}") from None
    confine.libvirt_file_server()
    kernel, accel = prepare(plan)
    sockets = domainxml.Sockets(plan.state_dir / "console.sock", plan.state_dir / "agent.sock")
    uuid = str(uuids.uuid4())
    watch = connection.watch(uuid)
    listeners: list[socket.socket] = []
    accepted: list[socket.socket] = []
    mounted: list[Path] = []
    domain = None
    try:
        mounted = hostroot.assemble(plan)
        listeners = [_listen(sockets.console), _listen(sockets.agent)]
        (plan.state_dir / connection.URI_FILE).write_text(f"{uri}\n")
        domain = _create(plan, uri, domainxml.build(plan, kernel, accel, sockets, uuid))
        for listener in listeners:
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                raise MachineError(
                    f"machine {plan.machine.name}: QEMU did not connect to {sockets.console} and "
                    f"{sockets.agent} within {ACCEPT_TIMEOUT:g} s (a remote hypervisor must reach them)"
                ) from None
    except BaseException:
        for connected in accepted:
            connected.close()
        if domain is not None:
            with contextlib.suppress(Exception):
                domain.destroy()
        connection.unwatch(uuid)
        hostroot.disassemble(mounted)
        _keep_log(plan, uri, domainxml.domain_name(plan.run_id, plan.machine.name))
        unprepare(plan)
        raise
    finally:
        for listener in listeners:
            listener.close()
        sockets.console.unlink(missing_ok=True)
        sockets.agent.unlink(missing_ok=True)
    console_connection, agent_connection = accepted
    for connected in accepted:
        connected.settimeout(None)
    hypervisor = Domain(plan, uri, domain, watch, mounted)
    return VirtualMachine(
        backend=plan.backend,
        name=plan.machine.name,
        access=f"(its console: {plan.log_dir / 'console.log'}; libvirt domain {hypervisor.name} at {uri})",
        plan=plan,
        hypervisor=hypervisor,
        monitor=Monitor(domain, plan.machine.name),
        console=Console(console_connection, plan.log_dir / "console.log"),
        channel=Channel(plan.machine.name, agent_connection),
        accelerator=accel,
    ).boot()
