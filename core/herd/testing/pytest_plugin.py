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

Tests that share machines declare them as a fixture of a scope instead (`herd.testing.machines`,
in herd.testing.fixtures): the run opens for the first test of the scope that asks for it and is
torn down when the scope ends.

    @herd.testing.machines({"server": {}, "client": {}}, scope="module")
    def web(machines):
        \"\"\"A server and a client, both up.\"\"\"
        machines.start_all()

    def test_ping(web):
        web.client.succeed("ping -c 1 server")

Options: `--herd-backend NAME` (the default backend for machines that name none), `--herd-keep`
(keep every run's machines up until the session ends, whatever its tests' outcome),
`--herd-output-dir DIR` (logs, consoles and journals under DIR/<test> or DIR/<scope>-<fixture>; by
default under pytest's temporary directories). A failed test's report carries the end of each of
its runs' machines' journals and where the full logs are.

Registered through the `pytest11` entry point, so it loads in every pytest session of an
environment where herd is installed; it imports the rest of herd only when a test uses it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from herd.testing.pytestrun import (
    KEPT_KEY,
    Declaration,
    Herd,
    backend_setting,
    opened_run,
    output_dir_setting,
    path_name,
    run_name,
    runs_of,
)

if TYPE_CHECKING:
    from herd.run.driver import Driver

__all__ = ["DRIVER_KEY", "Herd", "backend_setting", "output_dir_setting"]

MARKER = "herd"
DRIVER_KEY = pytest.StashKey["Driver"]()  # a marked test's driver, in its item's stash
LOG_TAIL_LINES = 200  # lines of log.txt a failure report ends with


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("herd", "herd: multi-machine tests")
    group.addoption(
        "--herd-backend", metavar="NAME", help="backend for machines that name none (ini: herd_backend)"
    )
    group.addoption(
        "--herd-keep", action="store_true", help="keep every run's machines up until the session ends"
    )
    group.addoption(
        "--herd-output-dir", metavar="DIR", type=Path, help="where each test's logs go (ini: herd_output_dir)"
    )
    parser.addini("herd_backend", "backend for machines that name none (--herd-backend overrides it)")
    parser.addini(
        "herd_output_dir",
        "where each test's logs go, relative to the rootdir (--herd-output-dir overrides it)",
    )


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


def _test_name(item: pytest.Item) -> str:
    """The item's name as a herd test name (`pytestrun.run_name`)."""
    return run_name(item.name)


@pytest.fixture
def herd(request: pytest.FixtureRequest) -> Iterator[Herd]:
    """The machines of a test marked `@pytest.mark.herd(machines=...)`, torn down when it ends."""
    item = request.node
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        raise pytest.UsageError(
            f"{item.nodeid} uses the herd fixture without @pytest.mark.{MARKER}(machines=...)"
        )
    given = marker.kwargs
    declaration = Declaration(
        given.get("machines"), given.get("networks"), given.get("timeout"), given.get("requires", ())
    )
    output_root = output_dir_setting(request.config)
    if output_root is not None:
        output_dir = output_root / path_name(item.nodeid)
    else:
        output_dir = request.getfixturevalue("tmp_path") / "herd"
    with opened_run(request, _test_name(item), declaration, output_dir) as session:
        item.stash[DRIVER_KEY] = session.driver
        for name in _machine_arguments(item):
            item.funcargs[name] = session.machines[name]
        yield session


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
    """The `timeout` of a test's runs bounds its body (the shortest, when it uses several), as a
    script's bounds the script."""
    timeouts = [run.driver.spec.timeout for run in runs_of(item) if run.driver.spec.timeout is not None]
    if not timeouts:
        return (yield)
    from herd.run.signals import global_timeout

    with global_timeout(min(timeouts)):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Record how the test went in each of its runs' results, and add a failure's herd sections."""
    report: pytest.TestReport = yield
    runs = runs_of(item)
    for run in runs:
        if call.when == "call" or report.failed:
            run.results.append(not report.failed)
    if not runs or not report.failed:
        return report
    report.longrepr = longrepr = _printable_report(report.longrepr)
    if call.when != "teardown" and hasattr(longrepr, "addsection"):
        for run in runs:
            _add_run_sections(longrepr, run.driver, f" ({run.driver.spec.name})" if len(runs) > 1 else "")
    return report


def _add_run_sections(longrepr: Any, driver: Driver, label: str) -> None:
    """The end of each machine's journal and console, and of the run's log, and where they are;
    `label` tells a test's runs apart when it has several."""
    from herd.linux.console import log_tail
    from herd.report import journal
    from herd.report.log import printable

    for machine in driver.machines:
        directory = driver.output_dir / machine.name
        tail = printable(journal.tail(directory))
        longrepr.addsection(f"herd: the end of {machine.name}'s journal{label}", tail)
        console = printable(log_tail(directory / "console.log"))
        longrepr.addsection(f"herd: the end of {machine.name}'s console{label}", console)
    log = driver.output_dir / "log.txt"
    if log.exists():
        longrepr.addsection(f"herd: the end of log.txt{label}", printable(log_tail(log, LOG_TAIL_LINES)))
    longrepr.addsection(f"herd: logs{label}", f"log, consoles and journals of this test: {driver.output_dir}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Tear down the machines `--herd-keep` kept, after the user has had a look at them. Last, so
    that the session's fixtures have been torn down, and the runs they kept are on the list."""
    kept = session.config.stash.get(KEPT_KEY, [])
    if not kept:
        return
    writer = session.config.get_terminal_writer()
    writer.line("")
    writer.line("herd: --herd-keep kept these machines up:", yellow=True)
    for driver, _ in kept:
        for machine in driver.machines:
            if (way_in := driver.way_in(machine)) is not None:
                writer.line(f"  {driver.spec.name} / {machine.name}: {way_in}")
    if sys.stdin.isatty():
        writer.line("press Enter to tear them down")
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.readline()
    for driver, outcome in kept:
        driver.close(outcome)
    kept.clear()
