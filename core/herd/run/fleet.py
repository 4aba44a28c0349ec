"""The run's machines as their backends run them: booted in parallel, reached through their
backends' hooks, stopped.

`Fleet` holds one `RunMachine` per machine of the test, in declaration order. Each is the
`MachineControl` (herd.run.machinecontrol) of its script-side `Machine`: it keeps the backend's handle
while the machine runs, its launch plan, and where its console began at its last boot, and it turns
each operation into the hook that does it. The driver opens the fleet when the run has its
directory, output, log and networks (`OpenRun`), and stops what runs at teardown.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herd.errors import HerdError, MachineError, PluginError
from herd.hooks.types import Capability, Kind, LaunchPlan, ShellSession, StopMode
from herd.host import hostimage, limits
from herd.linux import cgroups, console
from herd.report.log import printable
from herd.report.terminal import Progress
from herd.run import polling
from herd.run.signals import signals_ignored

if TYPE_CHECKING:
    from pluggy import HookCaller

    from herd.declare.spec import MachineSpec
    from herd.hooks.manager import Plugins
    from herd.hooks.types import Attachment, BackendInfo, DeviceGrant, ExecResult, ImageRoot, MachineHandle
    from herd.host.imageviews import ImageViews
    from herd.host.rundir import RunDir
    from herd.network.netcontrol import NetworkControl
    from herd.report.log import RunLog
    from herd.run.resolve import ResolvedTest

# Boots are CPU-bound: more at once than twice the cores only slows each (measured with 48
# machines on 2 cores).
BOOT_CONCURRENCY = max(2, 2 * (os.cpu_count() or 1))
TERMINAL_MACHINE_LINES = 8  # larger runs get one line for all their boots, and one for their stops
POWER_OFF_PROBE = 5.0  # seconds a probe command of `responds` may take


@dataclass(frozen=True)
class OpenRun:
    """What the run made when it opened, which booting and reaching its machines need.
    `networks_ready` is the making of its networks by their providers, under way in the background:
    a machine's backend plugs it in only once they are made."""

    run_dir: RunDir
    output_dir: Path
    log: RunLog
    network_control: NetworkControl
    networks_ready: Future[None]
    images: Mapping[str, ImageRoot]  # each machine's, by its name
    views: ImageViews


class Fleet:
    """The machines of one run. `stop_timeout` is how long a clean stop may take before the
    backend escalates; the run shortens it when a signal interrupts it."""

    def __init__(
        self,
        test: ResolvedTest,
        plugins: Plugins,
        stop_timeout: float,
        polling_conditions: list[polling.PollingCondition],
    ) -> None:
        self.plugins = plugins
        self.stop_timeout = stop_timeout
        self.polling_conditions = polling_conditions
        self.machines = {
            spec.name: RunMachine(self, spec, index, test.backends[spec.name], test.grants.get(spec.name, ()))
            for index, spec in enumerate(test.spec.machines)
        }
        self.line_each = len(self.machines) <= TERMINAL_MACHINE_LINES  # a terminal line per boot and stop
        self.lock = threading.Lock()  # guards the machines' handles, which boots and stops change
        self._open: OpenRun | None = None

    def open(self, run: OpenRun) -> None:
        """Take what the run opened: its machines can boot from now on."""
        self._open = run

    @property
    def run(self) -> OpenRun:
        if self._open is None:
            raise HerdError("the run has not started: its machines cannot boot yet")
        return self._open

    def running(self) -> list[RunMachine]:
        return [m for m in self.machines.values() if m.is_running()]

    def start(self, machines: Sequence[RunMachine]) -> None:
        """Boot the machines that are not running, in parallel; raise if any fails to boot."""
        pending = [m for m in machines if not m.is_running()]
        if not pending:
            return
        log = self.run.log
        containers = sum(1 for m in pending if m.backend_info.kind is Kind.CONTAINER)
        if containers and (raised := limits.ensure_inotify_instances(containers)):
            log.info(raised, color="yellow")
        started = time.monotonic()
        concurrency = min(len(pending), BOOT_CONCURRENCY)
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="herd-boot")
        futures: list[Future[None]] = []
        progress = Progress("booted", len(pending))
        if not self.line_each:
            log.status(progress, progress.render)
        try:
            for machine in pending:
                futures.append(pool.submit(machine.boot))
                futures[-1].add_done_callback(progress.one_done)
            wait(futures)
        finally:
            # Interrupted (Ctrl-C, the test's timeout), even while the boots were being submitted:
            # boots not begun never begin, and every boot under way ends before teardown looks for
            # machines to stop (the pool's own threads are waited for, so a boot whose future was
            # not yet listed here is waited for too).
            with signals_ignored():
                pool.shutdown(wait=True, cancel_futures=True)
            log.status(progress, None)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        self.run.networks_ready.result()
        if not self.line_each:
            booted = len(pending) - len(errors)
            log.info(
                f"{booted} machines booted in {time.monotonic() - started:.2f} s, {concurrency} at a time"
            )
        if len(errors) == 1:
            raise errors[0]  # type: ignore[misc]
        if errors:
            listed = "\n".join(f"  - {printable(str(error))}" for error in errors)
            raise MachineError(f"{len(errors)} machines failed to boot:\n{listed}")

    # -- what the networks ask of the machines --------------------------------------------------

    def push_hosts(self, name: str) -> None:
        """Give a machine the /etc/hosts that matches the networks as they are now."""
        machine = self.machines[name]
        hosts = self.run.network_control.hosts_file(name)
        if machine.is_running():
            result = machine.run_command("cat > /etc/hosts", 30.0, hosts.encode())
            if result.status != 0:
                raise MachineError(
                    f"machine {name}: cannot update /etc/hosts: "
                    f"{printable(result.stderr.decode(errors='replace')).strip()}"
                )
        elif machine.plan is not None:
            hostimage.write_hosts(machine.plan.root, hosts)

    def attach(self, handle: MachineHandle, attachment: Attachment) -> None:
        if not self.plugins.backend_hooks(handle.backend).herd_network_attach(
            handle=handle, attachment=attachment
        ):
            raise PluginError(
                f"backend {handle.backend!r} did not plug {handle.name} into {attachment.network}"
            )

    def detach(self, handle: MachineHandle, attachment: Attachment) -> None:
        if not self.plugins.backend_hooks(handle.backend).herd_network_detach(
            handle=handle, attachment=attachment
        ):
            raise PluginError(
                f"backend {handle.backend!r} did not unplug {handle.name} from {attachment.network}"
            )


class RunMachine:
    """One machine of the run, as its backend runs it: the `MachineControl` of its `Machine`."""

    def __init__(
        self,
        fleet: Fleet,
        spec: MachineSpec,
        index: int,
        backend_info: BackendInfo,
        grants: tuple[DeviceGrant, ...],
    ) -> None:
        self.fleet = fleet
        self.spec = spec
        self.name = spec.name
        self.index = index  # in the test's declaration order
        self.backend_info = backend_info
        self.grants = grants
        self.handle: MachineHandle | None = None  # the backend's, while the machine runs
        self.plan: LaunchPlan | None = None  # made at the first boot
        self.booted = False
        self._console_start = 0  # console.log's size when the machine last booted

    @property
    def backend(self) -> str:
        return self.spec.backend or "?"

    def backends_with(self, capability: Capability) -> list[str]:
        return self.fleet.plugins.backends_with(capability)

    @property
    def log(self) -> RunLog:
        return self.fleet.run.log

    @property
    def output_dir(self) -> Path:
        return self.fleet.run.output_dir

    # -- lifecycle ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.handle is not None

    def start(self) -> None:
        self.fleet.start([self])

    def _running_handle(self) -> MachineHandle:
        """The backend's handle; the machine boots first if it is not running."""
        if self.handle is None:
            self.start()
        handle = self.handle
        if handle is None:  # stopped from another thread since it booted
            raise MachineError(f"machine {self.name} is not running")
        return handle

    def boot(self) -> None:
        """Boot the machine (it is not running) and wait until its backend says it is ready."""
        run = self.fleet.run
        started = time.monotonic()
        plan = self._launch_plan()
        self._console_start = console.size_of(plan.log_dir / "console.log")
        plan.cgroup.create()
        run.networks_ready.result()  # its backend plugs it into them
        hooks = self._hooks()
        handle = hooks.herd_machine_start(plan=plan)
        if handle is None:
            raise PluginError(f"backend {plan.backend!r} did not start {self.name}")
        if handle.backend != plan.backend:  # the handle's hooks would go to another plugin
            hooks.herd_machine_stop(handle=handle, mode=StopMode.CRASH, timeout=self.fleet.stop_timeout)
            raise PluginError(
                f"backend {plan.backend!r} started {self.name} with a handle of backend {handle.backend!r}"
            )
        with self.fleet.lock:
            first_boot = not self.booted
            self.handle = handle
            self.booted = True
        run.log.info(
            f"booted in {time.monotonic() - started:.2f} s", machine=self.name, show=self.fleet.line_each
        )
        run.network_control.machine_booted(self.name)
        if first_boot:
            for host_port, guest_port in self.spec.forward_ports.items():
                run.network_control.forward_port(self.name, host_port, guest_port, None)

    def _launch_plan(self) -> LaunchPlan:
        """The machine's launch plan; made at its first boot, brought up to date at the next ones
        (the script may have plugged it into other networks meanwhile)."""
        run = self.fleet.run
        control = run.network_control
        attachments = control.attachments(self.name)
        if self.plan is not None:
            plan = replace(self.plan, attachments=attachments)
            hostimage.write_hosts(plan.root, control.hosts_file(self.name))
        else:
            state_dir = run.run_dir.machine_dir(self.name, self.spec.disk)
            log_dir = run.output_dir / self.name
            hosts = control.hosts_file(self.name)
            plan = LaunchPlan(
                run_id=run.run_dir.id,
                machine=self.spec,
                index=self.index,
                state_dir=state_dir,
                log_dir=log_dir,
                root=hostimage.prepare(
                    self.spec,
                    state_dir,
                    hosts,
                    log_dir / "journal",
                    image=run.images[self.name],
                    view=partial(run.views.path, shift=self.backend_info.id_shift),
                ),
                attachments=attachments,
                cgroup=cgroups.machine_cgroup(run.run_dir.id, self.name),
                grants=self.grants,
            )
        self.plan = plan
        return plan

    def stop(self, mode: StopMode) -> None:
        with self.fleet.lock:
            handle, self.handle = self.handle, None
        if handle is None:
            return
        how = self._hooks().herd_machine_stop(handle=handle, mode=mode, timeout=self.fleet.stop_timeout)
        self.log.info(how or f"stopped ({mode.value})", machine=self.name, show=self.fleet.line_each)
        self.fleet.run.network_control.machine_stopped(self.name)

    def responds(self) -> bool:
        handle = self.handle
        if handle is None:
            return False
        try:
            self._hooks().herd_machine_execute(
                handle=handle, command="true", timeout=POWER_OFF_PROBE, stdin=b""
            )
        except HerdError:
            return False  # its backend says it is not running, or cannot reach it any more
        return True

    def reboot(self, timeout: float) -> str:
        return str(self._ask(self._hooks().herd_machine_reboot, timeout=timeout))

    # -- commands -------------------------------------------------------------------------------

    def execute(self, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        """Run a command of the script, once the entered polling conditions that are due have been
        checked (`polling_condition`)."""
        polling.check_all(self.fleet.polling_conditions)
        return self.run_command(command, timeout, stdin)

    def run_command(self, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        """Run a command in the machine and log it, without checking the polling conditions."""
        handle = self._running_handle()
        started = time.monotonic()
        result: ExecResult | None = self._hooks().herd_machine_execute(
            handle=handle, command=command, timeout=timeout, stdin=stdin
        )
        if result is None:
            raise PluginError(f"backend {self.backend!r} did not execute a command on {self.name}")
        self.log.command(
            self.name,
            command,
            status=result.status,
            seconds=time.monotonic() - started,
            stdout=result.stdout,
            stderr=result.stderr,
            timed_out=result.timed_out,
        )
        return result

    def open_session(self, command: str | None, term: str, rows: int, cols: int) -> ShellSession:
        return self._running_handle().open_session(command, term, rows, cols)

    # -- console, keyboard, screen, monitor -----------------------------------------------------

    def console_text(self) -> str:
        """Its backend's answer while the machine runs on a backend with the `console` capability,
        else its `console.log` since the machine last booted."""
        handle = self.handle
        if handle is not None and Capability.CONSOLE in self.backend_info.capabilities:
            text = self._hooks().herd_machine_console(handle=handle)
            if text is not None:
                return str(text).replace("\r\n", "\n")
        path = self.output_dir / self.name / "console.log"
        return console.read_since(path, self._console_start).replace("\r\n", "\n")

    def send_chars(self, chars: str) -> None:
        self._ask(self._hooks().herd_machine_send_chars, chars=chars)

    def send_keys(self, keys: list[str]) -> None:
        self._ask(self._hooks().herd_machine_send_keys, keys=keys)

    def screenshot(self, path: Path) -> None:
        self._ask(self._hooks().herd_machine_screenshot, path=path)

    def monitor_command(self, command: str) -> str:
        return str(self._ask(self._hooks().herd_machine_monitor_command, command=command))

    def qmp_events(self, timeout: float) -> list[dict[str, Any]]:
        return list(self._ask(self._hooks().herd_machine_qmp_events, timeout=timeout))

    def _hooks(self) -> Any:
        """The hooks of the plugin of the machine's backend, the only one asked about it."""
        return self.fleet.plugins.backend_hooks(self.backend_info.name)

    def _ask(self, hook: HookCaller, **arguments: Any) -> Any:
        """Call a first-result hook for the machine's handle (it boots first); its backend must answer."""
        answer = hook(handle=self._running_handle(), **arguments)
        if answer is None:
            raise PluginError(f"backend {self.backend!r} did not answer {hook.name} for {self.name}")
        return answer

    # -- networks -------------------------------------------------------------------------------

    def block(self, network: str | None, blocked: bool) -> None:
        self._running_handle()
        self.fleet.run.network_control.block(self.name, network, blocked)

    def impair(self, network: str | None, values: dict[str, Any]) -> None:
        self._running_handle()
        self.fleet.run.network_control.impair(self.name, network, values)

    def unimpair(self, network: str | None) -> None:
        self._running_handle()
        self.fleet.run.network_control.unimpair(self.name, network)

    def forward_port(self, host_port: int, guest_port: int, network: str | None) -> int:
        self._running_handle()
        return self.fleet.run.network_control.forward_port(self.name, host_port, guest_port, network)

    def connect(self, network: str) -> None:
        control = self.fleet.run.network_control
        control.connect(self.name, network, self._running_handle(), self.fleet.attach, self.fleet.push_hosts)

    def disconnect(self, network: str) -> None:
        control = self.fleet.run.network_control
        control.disconnect(
            self.name, network, self._running_handle(), self.fleet.detach, self.fleet.push_hosts
        )
