"""herd's pytest plugin: herd tests written as pytest tests.

    @pytest.mark.herd(machines={"server": {"services": ["nginx"]}, "client": {}})
    def test_web(herd, server, client):
        herd.start_all()
        server.wait_for_unit("nginx")
        client.succeed("curl -sf http://server")

The `herd` marker declares the machines, and optionally `networks` (the test's networks, as
`herd.Test` takes them: see `herd.declare.netspec`; without it every machine is on the network `default`),
`timeout` (the whole test's limit in seconds) and `requires` (capabilities, such as "systemd": the
test is skipped, with the capability named, when a machine's backend does not declare one). Each
machine arrives as the test argument of its name (with '-' as '_'), and through the `herd` fixture,
which also carries the driver's functions (`start_all`, `subtest`, `retry`, `log`).
Machines boot on `herd.start_all()` or on first use, and are torn down when the test ends.

Options: `--herd-backend NAME` (the default backend for machines that name none), `--herd-keep`
(after a failure, keep the test's machines up until the session ends), `--herd-output-dir DIR`
(logs, consoles and journals under DIR/<test>; by default under the test's tmp_path). A failed test's
report carries the end of each machine's journal and where the full logs are.

Registered through the `pytest11` entry point, so it loads in every pytest session of an
environment where herd is installed; it imports the rest of herd only when a test uses it.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from herd.declare.spec import TestSpec
    from herd.run.driver import Driver, Outcome
    from herd.run.machine import Machine

MARKER = "herd"
DRIVER_KEY = pytest.StashKey["Driver"]()
LOG_TAIL_LINES = 200  # lines of log.txt a failure report ends with
REPORT_KEY = pytest.StashKey[pytest.TestReport]()
KEPT_KEY = pytest.StashKey[list[tuple["Driver", "Outcome"]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("herd", "herd: multi-machine tests")
    group.addoption(
        "--herd-backend", metavar="NAME", help="backend for machines that name none (ini: herd_backend)"
    )
    group.addoption("--herd-keep", action="store_true", help="after a failure, keep the test's machines up")
    group.addoption(
        "--herd-output-dir", metavar="DIR", type=Path, help="where each test's logs go (ini: herd_output_dir)"
    )
    parser.addini("herd_backend", "backend for machines that name none (--herd-backend overrides it)")
    parser.addini(
        "herd_output_dir",
        "where each test's logs go, relative to the rootdir (--herd-output-dir overrides it)",
    )


def backend_setting(config: pytest.Config) -> str | None:
    """The backend for machines that name none: --herd-backend, else the ini's herd_backend."""
    return config.getoption("herd_backend") or config.getini("herd_backend") or None


def output_dir_setting(config: pytest.Config) -> Path | None:
    """Where each test's logs go: --herd-output-dir, else the ini's herd_output_dir (relative to
    the rootdir), else None (the test's tmp_path)."""
    given = config.getoption("herd_output_dir")
    if given is not None:
        return Path(given)
    configured = config.getini("herd_output_dir")
    return config.rootpath / configured if configured else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(machines, networks=None, timeout=None, requires=()): the machines this test's `herd` "
        "fixture boots, and the networks between them",
    )
    config.stash[KEPT_KEY] = []


def _machine_arguments(item: pytest.Item) -> list[str]:
    marker = item.get_closest_marker(MARKER)
    machines = marker.kwargs.get("machines", {}) if marker else {}
    names = {str(name).replace("-", "_") for name in machines}
    return [name for name in getattr(item, "fixturenames", ()) if name in names]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marked tests get the `herd` fixture, set up just before their machine arguments: it hands
    them out, since no fixture of their names exists. Fixtures set up earlier (autouse ones) stay
    earlier, so they are torn down after the machines."""
    for item in items:
        if item.get_closest_marker(MARKER) is None or not hasattr(item, "fixturenames"):
            continue
        names = item.fixturenames
        if "herd" in names:
            names.remove("herd")
        machines = set(_machine_arguments(item))
        position = next((i for i, name in enumerate(names) if name in machines), len(names))
        names.insert(position, "herd")


class Herd:
    """What the `herd` fixture gives a test: its machines and the driver's functions."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.machines: dict[str, Machine] = {m.spec.script_name: m for m in driver.machines}
        self.start_all = driver.start_all
        self.join_all = driver.join_all
        self.subtest = driver.subtest
        self.retry = driver.retry
        self.log = driver.log.info
        self.polling_condition = driver.polling_condition
        self.serial_stdout_on = driver.serial_stdout_on
        self.serial_stdout_off = driver.serial_stdout_off

    @property
    def output_dir(self) -> Path:
        return self.driver.output_dir

    def __getattr__(self, name: str) -> Machine:
        machines: dict[str, Machine] = self.__dict__.get("machines", {})
        if name in machines:
            return machines[name]
        raise AttributeError(f"this test has no machine {name!r} (machines: {', '.join(machines)})")

    def __getitem__(self, name: str) -> Machine:
        return self.machines[name.replace("-", "_")]


def _skip_without_capabilities(
    spec: TestSpec, required: str | Iterable[str], default_backend: str | None
) -> None:
    """Skip the test, naming what is missing, when a machine's backend lacks a capability it needs."""
    from herd.errors import HerdError
    from herd.hooks.manager import Plugins
    from herd.hooks.types import Capability
    from herd.run.resolve import with_backends

    names = [required] if isinstance(required, str) else list(required)
    known = sorted(capability.value for capability in Capability)
    unknown = [name for name in names if name not in known]
    if unknown:
        pytest.fail(
            f"requires={unknown!r}: no such capability (capabilities: {', '.join(known)})", pytrace=False
        )
    capabilities = [Capability(name) for name in names]
    if not capabilities:
        return
    plugins = Plugins()
    try:
        machines = with_backends(spec, plugins, default_backend).machines
        infos = {m.name: plugins.backend(m.backend or "") for m in machines}
    except HerdError as error:
        pytest.fail(str(error), pytrace=False)
    for machine, info in infos.items():
        for capability in capabilities:
            if capability not in info.capabilities:
                pytest.skip(
                    f"backend {info.name!r} of machine {machine!r} lacks the {capability.value!r} capability"
                )


def _test_name(item: pytest.Item) -> str:
    """The item's name as a herd test name: ASCII letters, digits, `_`, `.` and `-`, cut to the
    longest name herd takes (a parametrized test's ids can be longer)."""
    from herd.declare.spec import TEST_NAME_MAX_BYTES

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name)[:TEST_NAME_MAX_BYTES]
    return name.strip("-.") or "test"


@pytest.fixture
def herd(request: pytest.FixtureRequest) -> Iterator[Herd]:
    """The machines of a test marked `@pytest.mark.herd(machines=...)`, torn down when it ends."""
    from herd.declare.script import ScriptSource
    from herd.declare.spec import parse_test
    from herd.errors import SpecError
    from herd.run.driver import Driver, RunOptions

    item = request.node
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        raise pytest.UsageError(
            f"{item.nodeid} uses the herd fixture without @pytest.mark.{MARKER}(machines=...)"
        )
    config = request.config
    try:
        spec = parse_test(
            _test_name(item),
            marker.kwargs.get("machines"),
            None,
            marker.kwargs.get("timeout"),
            marker.kwargs.get("networks"),
        )
    except SpecError as error:
        pytest.fail(str(error), pytrace=False)
    output_root = output_dir_setting(config)
    if output_root is not None:
        output_dir = Path(output_root) / re.sub(r"[^A-Za-z0-9_.-]+", "-", item.nodeid).strip("-")
    else:
        output_dir = request.getfixturevalue("tmp_path") / "herd"
    options = RunOptions(
        backend=backend_setting(config),
        output_dir=output_dir,
        terminal=None,
    )
    path = getattr(item, "path", None)
    source = ScriptSource(str(Path(path).resolve()) if path else None, None)
    _skip_without_capabilities(spec, marker.kwargs.get("requires", ()), options.backend)
    try:
        driver = Driver(spec, source, options)
    except SpecError as error:
        pytest.fail(str(error), pytrace=False)
    outcome = driver.open()
    item.stash[DRIVER_KEY] = driver
    try:
        session = Herd(driver)
        for name in _machine_arguments(item):
            item.funcargs[name] = session.machines[name]
        yield session
    finally:
        report = item.stash.get(REPORT_KEY, None)
        outcome.passed = report is not None and (report.passed or report.skipped)
        if not outcome.passed and config.getoption("herd_keep"):
            config.stash[KEPT_KEY].append((driver, outcome))
        else:
            driver.close(outcome)


def _printable_report(longrepr: Any) -> Any:
    """A failed herd test's report with the control characters in its tracebacks' lines and error
    messages made visible (`herd.report.log.printable`): pytest prints an error's message as it is, and a
    machine's output (a command's standard error, a console's tail) with it. Values of locals and
    arguments are shown by their repr, which escapes them already."""
    from herd.report.log import printable

    if isinstance(longrepr, str):
        return printable(longrepr)
    chain = getattr(longrepr, "chain", None) or [
        (getattr(longrepr, "reprtraceback", None), getattr(longrepr, "reprcrash", None), None)
    ]
    for traceback, crash, _ in chain:
        for entry in getattr(traceback, "reprentries", ()):
            entry.lines = [printable(line) for line in entry.lines]
        if crash is not None:
            crash.message = printable(crash.message)
    return longrepr


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A marked test's `timeout` bounds its body, as a script's bounds the script."""
    driver = item.stash.get(DRIVER_KEY, None)
    if driver is None or driver.spec.timeout is None:
        return (yield)
    from herd.run.signals import global_timeout

    with global_timeout(driver.spec.timeout):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    driver = item.stash.get(DRIVER_KEY, None)
    if call.when == "call":
        item.stash[REPORT_KEY] = report
    if driver is None or not report.failed:
        return report
    report.longrepr = longrepr = _printable_report(report.longrepr)
    if call.when == "teardown":
        return report
    if hasattr(longrepr, "addsection"):
        from herd.linux.console import log_tail
        from herd.report import journal
        from herd.report.log import printable

        for machine in driver.machines:
            directory = driver.output_dir / machine.name
            tail = printable(journal.tail(directory))
            longrepr.addsection(f"herd: the end of {machine.name}'s journal", tail)
            console = printable(log_tail(directory / "console.log"))
            longrepr.addsection(f"herd: the end of {machine.name}'s console", console)
        log = driver.output_dir / "log.txt"
        if log.exists():
            longrepr.addsection("herd: the end of log.txt", printable(log_tail(log, LOG_TAIL_LINES)))
        longrepr.addsection("herd: logs", f"log, consoles and journals of this test: {driver.output_dir}")
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Tear down the machines `--herd-keep` kept, after the user has had a look at them."""
    kept = session.config.stash.get(KEPT_KEY, [])
    if not kept:
        return
    writer = session.config.get_terminal_writer()
    writer.line("")
    writer.line("herd: --herd-keep kept the machines of failed tests:", yellow=True)
    for driver, _ in kept:
        for machine in driver.machines:
            handle = driver.handle_of(machine)
            if handle is not None and handle.access:
                writer.line(f"  {driver.spec.name} / {machine.name}: {handle.access}")
    if sys.stdin.isatty():
        writer.line("press Enter to tear them down")
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.readline()
    for driver, outcome in kept:
        driver.close(outcome)
    kept.clear()
