"""The driver: one run of one test, from validation to the last cleaned-up link.

Order of a run: resolve every machine's backend and validate its options (nothing has started yet);
take a run directory; make the networks; run the script, which boots machines (in parallel, through
`start_all()` or on first use); then tear everything down, whatever happened: machines, bridges,
firewall rules, cgroups, state. The output directory keeps the log, consoles and journals.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from herd import (
    cgroups,
    console,
    hostimage,
    hostsnapshot,
    limits,
    links,
    network,
    polling,
    residue,
)
from herd.backend import (
    Attachment,
    BackendInfo,
    Capability,
    ExecResult,
    Kind,
    LaunchPlan,
    MachineHandle,
    StopMode,
)
from herd.errors import (
    ArgumentError,
    HerdError,
    MachineError,
    PluginError,
    WaitTimeout,
)
from herd.firewall import BridgeRules
from herd.log import RunLog, printable
from herd.machine import Machine
from herd.netcontrol import NetworkControl
from herd.outputdir import make_output_dir, shown_path
from herd.plugins import Plugins
from herd.resolve import resolve_test
from herd.rundir import RunDir
from herd.script import ScriptSource, run_script, script_frames
from herd.signals import Interrupted, signals_ignored, signals_interrupt
from herd.spec import SINGLE_MACHINE_NAME, timeout_problem
from herd.waiting import poll

if TYPE_CHECKING:
    from herd.spec import TestSpec

STOP_TIMEOUT = 10.0  # seconds a clean stop may take before the backend escalates
INTERRUPTED_STOP_TIMEOUT = 2.0  # the same when a signal ended the run: the user wants out
# Boots are CPU-bound: more at once than twice the cores only slows each (measured with 48
# machines on 2 cores). Stops mostly wait on the machines' init, so more overlap pays.
BOOT_CONCURRENCY = max(2, 2 * (os.cpu_count() or 1))
STOP_CONCURRENCY = max(8, 8 * (os.cpu_count() or 1))
TERMINAL_MACHINE_LINES = 8  # larger runs get one line for all their boots, and one for their stops
LINK_CLEANUP_WAIT = 2.0  # seconds the kernel gets to clean up stopped machines' veths
POWER_OFF_PROBE = 5.0  # seconds a probe command of `wait_for_shutdown` may take
POWER_OFF_POLL = 0.1  # seconds between two such probes


@dataclass
class RunOptions:
    """How to run a test. `backend` is the default for machines that name none."""

    backend: str | None = None
    output_dir: Path | None = None
    keep: bool = False
    verbose: bool = False
    stop_timeout: float = STOP_TIMEOUT
    terminal: TextIO | None = field(default_factory=lambda: sys.stderr)
    check: bool = True  # check a string script's names before anything starts (`herd run --no-check`)

    def __post_init__(self) -> None:
        if (problem := timeout_problem(self.stop_timeout)) is not None:
            raise ArgumentError(f"run option stop_timeout: {problem}")


@dataclass
class Outcome:
    """How a run ended. `interrupted` names the signal that ended it early, if one did."""

    passed: bool
    seconds: float
    output_dir: Path | None
    run_id: str
    error: BaseException | None = None
    interrupted: str | None = None


class Driver:
    """Runs one test. Create it, then call `run()` once."""

    def __init__(
        self,
        spec: TestSpec,
        source: ScriptSource,
        options: RunOptions | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.options = options or RunOptions()
        self.plugins = plugins or Plugins()
        self.source = source
        resolved = resolve_test(spec, source, self.plugins, self.options.backend, self.options.check)
        self.spec, self._infos, self._grants = resolved.spec, resolved.backends, resolved.grants
        self.machines = [Machine(m, self) for m in self.spec.machines]
        self.polling_conditions: list[polling.PollingCondition] = []
        self._console_starts: dict[str, int] = {}  # console.log's size when each machine last booted
        self._console_echo: console.ConsoleEcho | None = None
        self._handles: dict[str, MachineHandle] = {}
        self._plans: dict[str, LaunchPlan] = {}
        self._lock = threading.Lock()
        self._snapshots: dict[int, Path] = {}
        self._snapshot_lock = threading.Lock()
        self._network_setup: Future[None] | None = None
        self.run_dir: RunDir | None = None
        self.rules: BridgeRules | None = None
        self.output_dir = Path()
        self._started = time.monotonic()
        self.run_id = ""  # set when the run opens, kept after it closed
        self._network_plan: network.RunNetworks | None = None
        self._network_control: NetworkControl | None = None
        self._booted: set[str] = set()
        self.log = RunLog(None, None)

    # -- what machines use ------------------------------------------------------------------------

    @property
    def _line_each(self) -> bool:
        """Whether the terminal gets a line per machine booted or stopped (the log always does)."""
        return len(self.machines) <= TERMINAL_MACHINE_LINES

    @property
    def networks(self) -> network.RunNetworks:
        """The run's network plan (made when the run starts)."""
        if self._network_plan is None:
            raise HerdError("the run has not started: its networks are not planned yet")
        return self._network_plan

    @property
    def network_control(self) -> NetworkControl:
        """What the script does to the run's networks (there once the run has started)."""
        if self._network_control is None:
            raise HerdError("the run has not started: its networks are not there yet")
        return self._network_control

    def handle(self, machine: Machine) -> MachineHandle:
        """The machine's backend handle; the machine boots first if it is not running."""
        return self._handle(machine)

    def backend_call(self, machine: Machine, hook: str, **arguments: Any) -> Any:
        """Call a first-result hook for the machine's handle; its backend must answer."""
        handle = self._handle(machine)
        answer = getattr(self._hooks(handle), hook)(handle=handle, **arguments)
        if answer is None:
            raise PluginError(f"backend {machine.backend!r} did not answer {hook} for {machine.name}")
        return answer

    def push_hosts(self, name: str) -> None:
        """Give a machine the /etc/hosts that matches the networks as they are now."""
        hosts = self.network_control.hosts_file(name)
        machine = next(m for m in self.machines if m.name == name)
        if self.is_running(machine):
            result = self._run_command(machine, "cat > /etc/hosts", 30.0, hosts.encode())
            if result.status != 0:
                raise MachineError(
                    f"machine {name}: cannot update /etc/hosts: "
                    f"{printable(result.stderr.decode(errors='replace')).strip()}"
                )
        elif name in self._plans:
            hostimage.write_hosts(self._plans[name].root, hosts)

    def attach(self, handle: MachineHandle, attachment: Attachment) -> None:
        if not self._hooks(handle).herd_network_attach(handle=handle, attachment=attachment):
            raise PluginError(
                f"backend {handle.backend!r} did not plug {handle.name} into {attachment.network}"
            )

    def detach(self, handle: MachineHandle, attachment: Attachment) -> None:
        if not self._hooks(handle).herd_network_detach(handle=handle, attachment=attachment):
            raise PluginError(
                f"backend {handle.backend!r} did not unplug {handle.name} from {attachment.network}"
            )

    def _hooks(self, handle: MachineHandle) -> Any:
        """The hooks of the plugin of the handle's backend (the only one asked about its machine)."""
        return self.plugins.backend_hooks(handle.backend)

    def backend_info(self, machine: Machine) -> BackendInfo:
        return self._infos[machine.name]

    def is_running(self, machine: Machine) -> bool:
        return machine.name in self._handles

    def handle_of(self, machine: Machine) -> MachineHandle | None:
        """The backend's handle of a running machine, or None."""
        return self._handles.get(machine.name)

    def _handle(self, machine: Machine) -> MachineHandle:
        if machine.name not in self._handles:
            self.start_machines([machine])
        return self._handles[machine.name]

    def execute(self, machine: Machine, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        """Run a command of the script in the machine, once the entered polling conditions that
        are due have been checked (`polling_condition`)."""
        polling.check_all(self.polling_conditions)
        return self._run_command(machine, command, timeout, stdin)

    def _run_command(self, machine: Machine, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
        handle = self._handle(machine)
        started = time.monotonic()
        result: ExecResult | None = self._hooks(handle).herd_machine_execute(
            handle=handle, command=command, timeout=timeout, stdin=stdin
        )
        if result is None:
            raise PluginError(f"backend {machine.backend!r} did not execute a command on {machine.name}")
        self.log.command(
            machine.name,
            command,
            status=result.status,
            seconds=time.monotonic() - started,
            stdout=result.stdout,
            stderr=result.stderr,
        )
        return result

    def _snapshot(self, id_shift: int) -> Path:
        """The host's /etc and /var as machines whose root is host id `id_shift` may see them,
        looked up once per run (every machine of the run then sees the same)."""
        with self._snapshot_lock:
            if id_shift not in self._snapshots:
                self._snapshots[id_shift] = hostsnapshot.snapshot(id_shift)
            return self._snapshots[id_shift]

    def _plan(self, machine: Machine, index: int) -> LaunchPlan:
        """The machine's launch plan; made at its first boot, brought up to date at the next ones
        (the script may have plugged it into other networks meanwhile)."""
        control = self.network_control
        attachments = control.attachments(machine.name)
        if machine.name in self._plans:
            plan = replace(self._plans[machine.name], attachments=attachments)
            hostimage.write_hosts(plan.root, control.hosts_file(machine.name))
        else:
            assert self.run_dir is not None
            state_dir = self.run_dir.machine_dir(machine.name, machine.spec.disk)
            log_dir = self.output_dir / machine.name
            hosts = control.hosts_file(machine.name)
            plan = LaunchPlan(
                run_id=self.run_dir.id,
                machine=machine.spec,
                index=index,
                state_dir=state_dir,
                log_dir=log_dir,
                root=hostimage.prepare(
                    machine.spec,
                    state_dir,
                    hosts,
                    log_dir / "journal",
                    self._snapshot(self.backend_info(machine).id_shift),
                ),
                attachments=attachments,
                cgroup=cgroups.machine_cgroup(self.run_dir.id, machine.name),
                grants=self._grants.get(machine.name, ()),
            )
        self._plans[machine.name] = plan
        return plan

    def _boot(self, machine: Machine) -> None:
        started = time.monotonic()
        plan = self._plan(machine, self.machines.index(machine))
        self._console_starts[machine.name] = console.size_of(plan.log_dir / "console.log")
        plan.cgroup.create()
        hooks = self.plugins.backend_hooks(plan.backend)
        handle = hooks.herd_machine_start(plan=plan)
        if handle is None:
            raise PluginError(f"backend {plan.backend!r} did not start {machine.name}")
        if handle.backend != plan.backend:  # the handle's hooks would go to another plugin
            hooks.herd_machine_stop(handle=handle, mode=StopMode.CRASH, timeout=self.options.stop_timeout)
            raise PluginError(
                f"backend {plan.backend!r} started {machine.name} with a handle of backend {handle.backend!r}"
            )
        with self._lock:
            first_boot = machine.name not in self._booted
            self._handles[machine.name] = handle
            self._booted.add(machine.name)
        self.log.info(
            f"booted in {time.monotonic() - started:.2f} s", machine=machine.name, show=self._line_each
        )
        self.network_control.machine_booted(machine.name)
        if first_boot:
            for host_port, guest_port in machine.spec.forward_ports.items():
                self.network_control.forward_port(machine.name, host_port, guest_port, None)

    def start_machines(self, machines: Sequence[Machine]) -> None:
        """Boot the machines that are not running, in parallel; raise if any fails to boot."""
        pending = [m for m in machines if not self.is_running(m)]
        if not pending:
            return
        containers = sum(1 for m in pending if self.backend_info(m).kind is Kind.CONTAINER)
        if containers and (raised := limits.ensure_inotify_instances(containers)):
            self.log.info(raised, color="yellow")
        started = time.monotonic()
        concurrency = min(len(pending), BOOT_CONCURRENCY)
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="herd-boot")
        futures = [pool.submit(self._boot, m) for m in pending]
        try:
            wait(futures)
        finally:
            # Interrupted (Ctrl-C, the test's timeout): boots not begun never begin, and those under
            # way end before teardown looks for machines to stop. A future cancelled here never
            # counts as done for `wait`, so only those that began are waited for.
            pool.shutdown(wait=False, cancel_futures=True)
            with signals_ignored():
                wait([f for f in futures if not f.cancelled()])
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if self._network_setup is not None:
            self._network_setup.result()
        if not self._line_each:
            booted = len(pending) - len(errors)
            self.log.info(
                f"{booted} machines booted in {time.monotonic() - started:.2f} s, {concurrency} at a time"
            )
        if len(errors) == 1:
            raise errors[0]  # type: ignore[misc]
        if errors:
            listed = "\n".join(f"  - {printable(str(error))}" for error in errors)
            raise MachineError(f"{len(errors)} machines failed to boot:\n{listed}")

    def wait_for_power_off(self, machine: Machine, timeout: float) -> None:
        """Wait until a running machine stops running commands (it powers off), then release it
        as a clean stop does, waiting for it to end. The probes are not logged."""
        handle = self.handle_of(machine)
        if handle is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._hooks(handle).herd_machine_execute(
                    handle=handle, command="true", timeout=POWER_OFF_PROBE, stdin=b""
                )
            except HerdError:
                break  # its backend says it is not running, or cannot reach it any more
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{machine.name}: timed out after {timeout:g} s waiting for it to power off"
                )
            time.sleep(POWER_OFF_POLL)
        self.stop_machine(machine, StopMode.CLEAN)

    def stop_machine(self, machine: Machine, mode: StopMode) -> None:
        with self._lock:
            handle = self._handles.pop(machine.name, None)
        if handle is None:
            return
        timeout = self.options.stop_timeout
        how = self._hooks(handle).herd_machine_stop(handle=handle, mode=mode, timeout=timeout)
        self.log.info(how or f"stopped ({mode.value})", machine=machine.name, show=self._line_each)

    # -- the run ----------------------------------------------------------------------------------

    def namespace(self) -> dict[str, Any]:
        """The names a test script sees (`herd.spec.script_names`): the machines, `machine` in a
        test of one, and the driver's names, the NixOS test driver's globals among them."""
        import unittest

        namespace: dict[str, Any] = {m.spec.script_name: m for m in self.machines}
        if len(self.machines) == 1:
            namespace[SINGLE_MACHINE_NAME] = self.machines[0]
        namespace.update(
            driver=self,
            machines=list(self.machines),
            start_all=self.start_all,
            join_all=self.join_all,
            subtest=self.subtest,
            retry=self.retry,
            log=self.log.info,
            polling_condition=self.polling_condition,
            serial_stdout_on=self.serial_stdout_on,
            serial_stdout_off=self.serial_stdout_off,
            create_machine=self.create_machine,
            t=unittest.TestCase(),
            os=os,
            # Older NixOS drivers ran scripts among their own module's globals, where these were
            # imported; nixpkgs scripts of that time use them without an import.
            re=re,
            time=time,
            vlans=list(self.networks.networks),
            BaseMachine=Machine,
        )
        return namespace

    @property
    def out_dir(self) -> Path:
        """The run's output directory (the NixOS test driver's name for it).

        >>> (driver.out_dir / "report.txt").write_text(server.succeed("cat /var/log/report"))
        """
        return self.output_dir

    def join_all(self) -> None:
        """Wait until every machine has powered off (the script powers them off, or they do).

        >>> for m in machines:
        ...     m.execute("systemctl poweroff --no-block")
        >>> join_all()
        """
        for machine in self.machines:
            machine.wait_for_shutdown()

    def create_machine(self, *_args: Any, **_kwargs: Any) -> Machine:
        """Not in herd: a test declares all its machines (`herd.Test(machines=...)`).

        A declared machine boots when the script first uses it or calls `start()`, so a machine the
        NixOS script makes with `create_machine` is one more entry of `machines` in herd.
        """
        raise HerdError(
            f"test {self.spec.name!r}: create_machine() is not available: herd machines are declared "
            f"in the test (herd.Test(machines={{...}})), and a declared machine boots when the script "
            f"first uses it or calls its start()"
        )

    def polling_condition(
        self,
        function: Callable[[], Any] | None = None,
        *,
        seconds_interval: float = polling.DEFAULT_INTERVAL,
        description: str | None = None,
    ) -> Any:
        """A condition checked between the script's commands while it is entered (`with`).

        Use it as a decorator, with or without arguments, or call it with a function; the condition
        holds unless its function returns False or raises. A condition that does not hold when
        checked fails the test with `PollingConditionFailed`. `seconds_interval` spaces the checks;
        `description` names the condition in the log (else the function's docstring or name).

        >>> @polling_condition(seconds_interval=5)
        ... def nginx_runs():
        ...     server.succeed("pgrep -x nginx")
        >>> with nginx_runs:
        ...     client.succeed("curl -sf http://server")
        """

        def make(condition: Callable[[], Any]) -> polling.PollingCondition:
            return polling.PollingCondition(
                condition, self.polling_conditions, self.log, seconds_interval, description
            )

        return make if function is None else make(function)

    def console_text(self, machine: Machine) -> str:
        """What the machine's console printed since it last booted: its backend's answer while it
        runs on a backend with the `console` capability, else its `console.log`."""
        handle = self.handle_of(machine)
        if handle is not None and Capability.CONSOLE in self.backend_info(machine).capabilities:
            text = self._hooks(handle).herd_machine_console(handle=handle)
            if text is not None:
                return str(text).replace("\r\n", "\n")
        start = self._console_starts.get(machine.name, 0)
        return console.read_since(self.output_dir / machine.name / "console.log", start).replace("\r\n", "\n")

    def serial_stdout_on(self) -> None:
        """Echo every machine's console to the terminal from now on, line by line (off by default).

        >>> serial_stdout_on()
        """
        self._echo().switch(True)

    def serial_stdout_off(self) -> None:
        """Stop echoing the consoles to the terminal (`serial_stdout_on`).

        >>> serial_stdout_off()
        """
        if self._console_echo is not None:
            self._console_echo.switch(False)

    def _echo(self) -> console.ConsoleEcho:
        if self._console_echo is None:
            by_name = {m.name: m for m in self.machines}
            self._console_echo = console.ConsoleEcho(
                list(by_name),
                lambda name: self.console_text(by_name[name]),
                lambda name, line: self.log.terminal_line(f"  {name:<12} | {line}", "dim"),
            )
        return self._console_echo

    def start_all(self) -> None:
        """Boot every machine of the test at once and wait until all are ready.

        >>> start_all()
        """
        self.start_machines(self.machines)

    @contextlib.contextmanager
    def subtest(self, name: str) -> Iterator[None]:
        """A named, timed part of the script; the log nests what happens inside it.

        >>> with subtest("the server answers"):
        ...     client.succeed("curl -sf http://server")
        """
        with self.log.section(f"subtest: {name}"):
            yield

    def retry(self, function: Any, timeout: float = 900.0, timeout_seconds: float | None = None) -> None:
        """Call `function(last_try)` until it returns True; fail after `timeout` seconds
        (`timeout_seconds` is the NixOS test driver's name for it).

        >>> retry(lambda last_try: "ready" in server.succeed("cat /run/state"))
        """
        timeout = timeout if timeout_seconds is None else timeout_seconds

        if (problem := timeout_problem(timeout)) is not None:
            raise ArgumentError(f"retry: timeout: {problem}")
        poll(
            lambda last_try: bool(function(last_try)),
            timeout,
            f"{getattr(function, '__name__', 'the condition')} to hold",
        )

    def _setup_networks(self) -> None:
        """Reap what dead runs left, then make this run's bridges and firewall rules (in the
        background, while machines boot)."""
        assert self.rules is not None
        try:
            self._reap_dead_runs()
        except Exception as error:  # cleaning up after others must not stop this run
            self.log.info(f"could not clean up after dead runs: {error}; try `herd clean`", color="yellow")
        for plan in self.networks.networks:
            links.ensure_bridge(plan.bridge)
            self.rules.allow(plan.bridge)

    def _reap_dead_runs(self) -> None:
        """Remove what dead runs left. Every plugin is asked (a dead run may have used one this run
        does not), but they are loaded only when there is something to reap."""
        dead = residue.dead_runs()
        if not dead:
            return
        for run_id, removed in residue.reap_dead(Plugins().load_all(), dead).items():
            self.log.info(f"removed what dead run {run_id} left: {', '.join(removed)}", show=False)
            self.log.info(f"removed {len(removed)} things a dead run ({run_id}) left behind", color="yellow")

    def _guarded(self, what: str, step: Callable[[], object]) -> None:
        """One step of teardown: a failure is logged and the other steps still run."""
        try:
            step()
        except Exception as error:
            self.log.info(f"teardown: {what} failed: {error}", color="red")

    def teardown(self) -> None:
        """Stop every machine, then remove everything else the run made but its output.

        Machines stop in parallel (`StopMode.TEARDOWN`: cleanly, where a backend's power-off is
        cheap); only then do their networks go, so that services that talk to their peers while
        stopping still can. A step that fails is reported and the
        others still run.
        """
        running = [m for m in self.machines if self.is_running(m)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, min(len(running), STOP_CONCURRENCY))) as pool:
            for machine in running:
                pool.submit(
                    self._guarded,
                    f"stopping {machine.name}",
                    partial(self.stop_machine, machine, StopMode.TEARDOWN),
                )
        stopped = sum(1 for m in running if not self.is_running(m))
        if running and not self._line_each:
            self.log.info(f"{stopped} machines stopped in {time.monotonic() - started:.2f} s")
        if self._network_setup is not None:
            with contextlib.suppress(Exception):  # its error was reported where it mattered
                self._network_setup.result()
        assert self.run_dir is not None
        run_cgroup = cgroups.run_cgroup(self.run_dir.id)

        def remove_run_cgroup() -> None:
            run_cgroup.kill()
            run_cgroup.remove()

        steps: list[tuple[str, Callable[[], object]]] = [("removing the run's cgroups", remove_run_cgroup)]
        if self.rules is not None:
            steps.append(("removing firewall rules", self.rules.remove_all))
        if self._network_control is not None:
            self._guarded("stopping port forwards", self._network_control.close)
        planned = self._network_plan.networks if self._network_plan is not None else ()
        steps += [(f"deleting bridge {p.bridge}", partial(links.delete_link, p.bridge)) for p in planned]
        with ThreadPoolExecutor(max_workers=2) as pool:
            for what, step in steps:
                pool.submit(self._guarded, what, step)
        self._guarded("deleting leftover links", self._remove_leftover_links)
        self._guarded("removing the run directory", self.run_dir.remove)
        self.run_dir = None

    def _remove_leftover_links(self) -> None:
        assert self.run_dir is not None
        for name in links.remove_links(f"{network.LINK_PREFIX}{self.run_dir.id}", wait=LINK_CLEANUP_WAIT):
            self.log.info(f"teardown: deleted link {name}, which outlived its machine", show=False)

    def keep_until_interrupted(self) -> None:
        self.log.info("--keep: the machines stay up until you press Ctrl-C", color="yellow")
        for machine in self.machines:
            handle = self._handles.get(machine.name)
            if handle is not None and handle.access:
                self.log.info(f"shell: {handle.access}", machine=machine.name)
        with contextlib.suppress(Interrupted), signals_interrupt(None):
            threading.Event().wait()

    def open(self) -> Outcome:
        """Start the run: its directory, output, log and networks; no machine boots yet.

        Every `open()` that returns must be paired with `close()`; one that raises has already
        cleaned up. `run()` does both around the test's script; the pytest plugin around a test.
        """
        self._started = time.monotonic()
        links.start_helper()
        self.run_dir = RunDir()
        self.run_id = self.run_dir.id
        outcome = Outcome(passed=False, seconds=0.0, output_dir=None, run_id=self.run_id)
        try:
            self._prepare_run(outcome)
        except BaseException:
            self.close(outcome)
            raise
        return outcome

    def close(self, outcome: Outcome) -> None:
        """Tear the run down (see `teardown`), then log how it ended."""
        with signals_ignored():
            if self._console_echo is not None:
                self._console_echo.stop()
            self.log.info("tearing down", show=False)
            self.teardown()
            outcome.seconds = time.monotonic() - self._started
            self._report_end(outcome)
            self.log.close()

    def run(self) -> Outcome:
        """Run the test's script; return how it went. Teardown happens whatever the script does."""
        if self.spec.script is None:
            raise HerdError(f"test {self.spec.name!r} has no script to run")
        outcome = self.open()
        try:
            with signals_interrupt(self.spec.timeout):
                run_script(self.spec.script, self.namespace(), self.spec.name, self.source)
            outcome.passed = True
        except Interrupted as interruption:
            outcome.interrupted = interruption.signal_name
            outcome.error = interruption
            self.log.info(f"interrupted by {interruption.signal_name}: stopping the machines", color="yellow")
            self.options.stop_timeout = min(self.options.stop_timeout, INTERRUPTED_STOP_TIMEOUT)
        except Exception as error:
            outcome.error = error
            self.report_failure(error)
            if self.options.keep:
                self.keep_until_interrupted()
        finally:
            self.close(outcome)
        return outcome

    def _prepare_run(self, outcome: Outcome) -> None:
        """Output directory, log, network plan; then the bridges start coming up in the background."""
        assert self.run_dir is not None
        self.output_dir = make_output_dir(self.options.output_dir, self.spec.name, self.run_dir.id)
        outcome.output_dir = self.output_dir
        self.log = RunLog(
            self.output_dir / "log.txt", self.options.terminal, self.options.verbose, self.spec.name
        )
        self._network_plan = network.plan(self.run_dir.id, self.spec)
        self._network_control = NetworkControl(self._network_plan, self.run_dir.id, self.log)
        backends = ", ".join(sorted({m.backend or "?" for m in self.spec.machines}))
        names = ", ".join(m.name for m in self.machines)
        if not self._line_each:
            names = f"{len(self.machines)} machines ({self.machines[0].name} … {self.machines[-1].name})"
        self.log.info(f"herd: {self.spec.name} · {names} on {backends} · run {self.run_dir.id}", color="bold")
        self.rules = BridgeRules(self.run_dir.id)
        network_setup = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herd-network")
        self._network_setup = network_setup.submit(self._setup_networks)
        network_setup.shutdown(wait=False)

    def report_failure(self, error: BaseException) -> None:
        import traceback

        message = str(error) if isinstance(error, HerdError) else f"{type(error).__name__}: {error}"
        self.log.failure(message, "".join(traceback.format_exception(error)))
        for frame in script_frames(error, self.source):
            self.log.terminal_line(
                f"  at {frame.filename}:{frame.lineno}: {(frame.line or '').strip()}", "dim"
            )
        self.log.terminal_line(f"  error: {message}", "red")

    def _report_end(self, outcome: Outcome) -> None:
        where = f" · logs: {shown_path(self.output_dir)}"
        result = "PASS" if outcome.passed else "INTERRUPTED" if outcome.interrupted else "FAIL"
        self.log.end(result, outcome.seconds)
        if outcome.passed:
            self.log.info(f"PASS {self.spec.name} in {outcome.seconds:.2f} s{where}", color="green")
        elif outcome.interrupted:
            self.log.info(
                f"INTERRUPTED {self.spec.name} by {outcome.interrupted} after {outcome.seconds:.2f} s{where}",
                color="yellow",
            )
        else:
            self.log.info(f"FAIL {self.spec.name} in {outcome.seconds:.2f} s{where}", color="red")
