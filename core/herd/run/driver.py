"""The driver: one run of one test, from validation to the last cleaned-up link.

Order of a run: resolve every machine's backend and validate the test (herd.run.resolve; nothing has
started yet); open the run: take a run directory, make the output directory and the log, plan the
networks and have their providers start making them; run the script, which boots machines
(herd.run.fleet: in parallel, through `start_all()` or on first use); then tear everything down,
whatever happened: machines, networks, cgroups, state. The output directory keeps the log,
consoles and journals.

`Driver` is a context manager for that lifecycle: entering opens the run, leaving tears it down,
whatever happened in the block. `run()` runs the test's script in it; the pytest plugin pairs
`open()` and `close()` around a test. The script sees the driver as `driver`, with the NixOS test
driver's names (`start_all`, `subtest`, `retry`, ...), and each machine as a `Machine`, which
reaches its run through the `MachineControl` protocol (herd.run.machinecontrol) that the fleet's
machines implement.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from herd.declare.script import ScriptSource, run_script, script_frames
from herd.declare.spec import SINGLE_MACHINE_NAME, timeout_problem
from herd.errors import ArgumentError, HerdError
from herd.hooks.manager import Plugins
from herd.hooks.types import Capability, MachineHandle, StopMode
from herd.host import residue
from herd.host.imageviews import ImageViews
from herd.host.rundir import RunDir
from herd.linux import cgroups, links
from herd.network.netcontrol import NetworkControl
from herd.report.log import RunLog
from herd.report.runrecord import SUBTEST_PREFIX
from herd.run import polling
from herd.run.fleet import Fleet, OpenRun
from herd.run.images import resolve_images
from herd.run.liveoutput import LiveOutput
from herd.run.machine import Machine
from herd.run.outputdir import make_output_dir, shown_path
from herd.run.resolve import resolve_test
from herd.run.shellserver import RunFacts, ShellServer
from herd.run.signals import Interrupted, signals_ignored, signals_interrupt
from herd.run.waiting import poll

if TYPE_CHECKING:
    from herd.declare.spec import TestSpec
    from herd.network.plan import RunNetworks

STOP_TIMEOUT = 10.0  # seconds a clean stop may take before the backend escalates
INTERRUPTED_STOP_TIMEOUT = 2.0  # the same when a signal ended the run: the user wants out
# Stops mostly wait on the machines' init, so more overlap pays than for boots.
STOP_CONCURRENCY = max(8, 8 * (os.cpu_count() or 1))


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
    console: bool = False  # show the machines' consoles and journals as they run (`herd run --console`)

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
    """Runs one test: call `run()` once, or use it as a context manager (`with Driver(...) as
    driver:`), which opens the run on entry and tears it down on exit, whatever happened."""

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
        self.spec = resolved.spec
        self.backends = resolved.backends
        self.polling_conditions: list[polling.PollingCondition] = []
        self.fleet = Fleet(resolved, self.plugins, self.options.stop_timeout, self.polling_conditions)
        self.machines = [Machine(m, self.fleet.machines[m.name]) for m in self.spec.machines]
        self._live: LiveOutput | None = None  # the consoles and journals on the terminal
        self._background: list[Future[None]] = []  # the networks' creation, then the reaping of dead runs
        self.run_dir: RunDir | None = None
        self.output_dir = Path()
        self._started = time.monotonic()
        self.run_id = ""  # set when the run opens, kept after it closed
        self._network_plan: RunNetworks | None = None
        self._network_control: NetworkControl | None = None
        self.log = RunLog(None, None)
        self._shell_server: ShellServer | None = None
        # How the run ends: `open()` makes it, the script or the `with` block decides it.
        self.outcome = Outcome(passed=False, seconds=0.0, output_dir=None, run_id="")

    # -- the run's lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Tear the run down. It passed unless the block raised or a failure was recorded in its
        outcome (`run()` records the script's); an exception from the block is its outcome's error."""
        outcome = self.outcome
        if error is not None and outcome.error is None:
            outcome.error = error
        outcome.passed = outcome.error is None
        self.close(outcome)

    def open(self) -> Outcome:
        """Start the run: its directory, output, log and networks; no machine boots yet.

        Every `open()` that returns must be paired with `close()`; one that raises has already
        cleaned up. `run()` and `with` do both; the pytest plugin does around a test.
        """
        self._started = time.monotonic()
        links.start_helper()
        self.run_dir = RunDir()
        self.run_id = self.run_dir.id
        self.outcome = outcome = Outcome(passed=False, seconds=0.0, output_dir=None, run_id=self.run_id)
        try:
            self._prepare_run(outcome)
        except BaseException:
            self.close(outcome)
            raise
        return outcome

    def close(self, outcome: Outcome) -> None:
        """Tear the run down (see `teardown`), then log how it ended."""
        with signals_ignored():
            self._stop_serving_shells()
            self.log.info("tearing down", show=False)
            try:
                self.teardown()
            finally:  # the machines' last lines, shown once they stopped
                if self._live is not None:
                    self._live.stop()
            outcome.seconds = time.monotonic() - self._started
            self._report_end(outcome)
            self.log.close()

    def run(self) -> Outcome:
        """Run the test's script; return how it went. Teardown happens whatever the script does."""
        if self.spec.script is None:
            raise HerdError(f"test {self.spec.name!r} has no script to run")
        with self:
            outcome = self.outcome
            try:
                with signals_interrupt(self.spec.timeout):
                    run_script(self.spec.script, self.namespace(), self.spec.name, self.source)
            except Interrupted as interruption:
                self.note_interruption(interruption)
            except Exception as error:
                outcome.error = error
                self.report_failure(error)
            if self.options.keep and outcome.interrupted is None:
                self.keep_until_interrupted()
        return outcome

    def note_interruption(self, interruption: Interrupted) -> None:
        """A signal ended the run: its outcome says which, and its machines stop sooner."""
        self.outcome.interrupted = interruption.signal_name
        self.outcome.error = interruption
        self.log.info(f"interrupted by {interruption.signal_name}: stopping the machines", color="yellow")
        self.fleet.stop_timeout = min(self.fleet.stop_timeout, INTERRUPTED_STOP_TIMEOUT)

    def _prepare_run(self, outcome: Outcome) -> None:
        """Output directory, log, network plan; then the networks' providers start making them in
        the background, and dead runs are reaped after that, while the machines' images are
        resolved (built, the first time)."""
        assert self.run_dir is not None
        self.output_dir = make_output_dir(self.options.output_dir, self.spec.name, self.run_dir.id)
        outcome.output_dir = self.output_dir
        self.log = RunLog(
            self.output_dir / "log.txt",
            self.options.terminal,
            self.options.verbose,
            self.spec.name,
            [m.name for m in self.machines],
        )
        control = NetworkControl.planned(self.spec, self.run_dir.id, self.log, self.plugins)
        self._network_control, self._network_plan = control, control.plan
        backends = ", ".join(sorted({m.backend or "?" for m in self.spec.machines}))
        names = ", ".join(m.name for m in self.machines)
        if not self.fleet.line_each:
            names = f"{len(self.machines)} machines ({self.machines[0].name} … {self.machines[-1].name})"
        self.log.info(f"herd: {self.spec.name} · {names} on {backends} · run {self.run_dir.id}", color="bold")
        background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herd-network")
        networks_ready = background.submit(control.create)
        self._background = [networks_ready, background.submit(self._reap_dead_runs)]
        background.shutdown(wait=False)
        images = resolve_images(self.spec, self.plugins, self.backends, self.log)
        self.fleet.open(
            OpenRun(
                self.run_dir,
                self.output_dir,
                self.log,
                control,
                networks_ready,
                images,
                ImageViews(self.run_dir.path / "images"),
            )
        )
        self._live = LiveOutput(self.fleet, self.log, self.output_dir)
        if self.options.console:
            self._live.consoles(True)
            self._live.follow_journals()
        self._serve_shells()

    def _serve_shells(self) -> None:
        """Answer `herd list` and `herd shell` on the run's socket while the run lives."""
        assert self.run_dir is not None and self._network_plan is not None
        facts = RunFacts(self.spec.name, self.run_dir.id, self.output_dir, self._network_plan)
        self._shell_server = ShellServer(self.run_dir.path, self.fleet, facts)

    def _stop_serving_shells(self) -> None:
        if self._shell_server is not None:
            self._shell_server.close()
            self._shell_server = None

    def _reap_dead_runs(self) -> None:
        """Remove what dead runs left (in the background, once this run's networks are made).
        Every plugin is asked (a dead run may have used one this run does not), but they are loaded
        only when there is something to reap; cleaning up after others never stops this run."""
        try:
            self._reap_dead()
        except Exception as error:
            self.log.info(f"could not clean up after dead runs: {error}; try `herd clean`", color="yellow")

    def _reap_dead(self) -> None:
        dead = residue.dead_runs(self.plugins)
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
        cheap); only then do their networks go, each provider's beside the run's cgroups, so that
        services that talk to their peers while stopping still can. A step that fails is reported
        and the others still run.
        """
        running = self.fleet.running()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, min(len(running), STOP_CONCURRENCY))) as pool:
            for machine in running:
                pool.submit(
                    self._guarded, f"stopping {machine.name}", partial(machine.stop, StopMode.TEARDOWN)
                )
        stopped = sum(1 for m in running if not m.is_running())
        if running and not self.fleet.line_each:
            self.log.info(f"{stopped} machines stopped in {time.monotonic() - started:.2f} s")
        for work in self._background:
            with contextlib.suppress(Exception):  # its error was reported where it mattered
                work.result()
        assert self.run_dir is not None
        run_cgroup = cgroups.run_cgroup(self.run_dir.id)

        def remove_run_cgroup() -> None:
            run_cgroup.kill()
            run_cgroup.remove()

        steps: list[tuple[str, Callable[[], object]]] = [("removing the run's cgroups", remove_run_cgroup)]
        if self._network_control is not None:
            steps += self._network_control.teardown_steps()
        with ThreadPoolExecutor(max_workers=2) as pool:
            for what, step in steps:
                pool.submit(self._guarded, what, step)
        self._guarded("removing the run directory", self.run_dir.remove)
        self.run_dir = None

    def keep_until_interrupted(self) -> None:
        self.log.info("--keep: the machines stay up until you press Ctrl-C", color="yellow")
        for machine in self.machines:
            if (way_in := self.way_in(machine)) is not None:
                self.log.info(f"shell: {way_in}", machine=machine.name)
        with contextlib.suppress(Interrupted), signals_interrupt(None):
            threading.Event().wait()

    def way_in(self, machine: Machine) -> str | None:
        """How a user gets into a running machine from another terminal: `herd shell`, or the
        backend's own way where it has no `shell` capability; None when it is not running."""
        handle = self.handle_of(machine)
        if handle is None:
            return None
        if Capability.SHELL in self.backends[machine.name].capabilities:
            return f"herd shell {self.run_id} {machine.name}"
        return handle.access or None

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

    # -- what the run holds -----------------------------------------------------------------------

    @property
    def networks(self) -> RunNetworks:
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

    def handle_of(self, machine: Machine) -> MachineHandle | None:
        """The backend's handle of a running machine, or None."""
        return self.fleet.machines[machine.name].handle

    @property
    def out_dir(self) -> Path:
        """The run's output directory (the NixOS test driver's name for it).

        Example::

            (driver.out_dir / "report.txt").write_text(server.succeed("cat /var/log/report"))
        """
        return self.output_dir

    # -- the script's names: the NixOS test driver's ----------------------------------------------

    def namespace(self) -> dict[str, Any]:
        """The names a test script sees (`herd.declare.spec.script_names`): the machines, `machine` in a
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

    def start_all(self) -> None:
        """Boot every machine of the test at once and wait until all are ready.

        Example::

            start_all()
        """
        self.fleet.start(list(self.fleet.machines.values()))

    def join_all(self) -> None:
        """Wait until every machine has powered off (the script powers them off, or they do).

        Example::

            for m in machines:
                m.execute("systemctl poweroff --no-block")
            join_all()
        """
        for machine in self.machines:
            machine.wait_for_shutdown()

    @contextlib.contextmanager
    def subtest(self, name: str) -> Iterator[None]:
        """A named, timed part of the script; the log nests what happens inside it.

        Example::

            with subtest("the server answers"):
                client.succeed("curl -sf http://server")
        """
        with self.log.section(f"{SUBTEST_PREFIX}{name}"):
            yield

    def retry(self, function: Any, timeout: float = 900.0, timeout_seconds: float | None = None) -> None:
        """Call `function(last_try)` until it returns True; fail after `timeout` seconds
        (`timeout_seconds` is the NixOS test driver's name for it).

        Example::

            retry(lambda last_try: "ready" in server.succeed("cat /run/state"))
        """
        timeout = timeout if timeout_seconds is None else timeout_seconds

        if (problem := timeout_problem(timeout)) is not None:
            raise ArgumentError(f"retry: timeout: {problem}")
        poll(
            lambda last_try: bool(function(last_try)),
            timeout,
            f"{getattr(function, '__name__', 'the condition')} to hold",
            log=self.log,
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

        Example::

            @polling_condition(seconds_interval=5)
            def nginx_runs():
                server.succeed("pgrep -x nginx")
            with nginx_runs:
                client.succeed("curl -sf http://server")
        """

        def make(condition: Callable[[], Any]) -> polling.PollingCondition:
            return polling.PollingCondition(
                condition, self.polling_conditions, self.log, seconds_interval, description
            )

        return make if function is None else make(function)

    def serial_stdout_on(self) -> None:
        """Echo every machine's console to the terminal from now on, line by line (off by default).

        Example::

            serial_stdout_on()
        """
        self._live_output().consoles(True)

    def serial_stdout_off(self) -> None:
        """Stop echoing the consoles to the terminal (`serial_stdout_on`).

        Example::

            serial_stdout_off()
        """
        self._live_output().consoles(False)

    def _live_output(self) -> LiveOutput:
        if self._live is None:
            raise HerdError("the run has not started: its machines have no output yet")
        return self._live

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
