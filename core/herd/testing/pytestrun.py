"""One herd run under pytest, whoever opens it: the `herd` fixture of a marked test, or a fixture
made with `herd.testing.machines`.

A run is opened by a fixture and closed when that fixture's scope ends (or, with `--herd-keep`, when
the session ends). The fixture records it in the stash of its scope's node (the test item, module,
class, package or session), under the fixture's name, so that the plugin's hooks find the runs of
a test by walking up its chain of nodes: for its timeout, for its failure report (even when the
fixture itself failed while setting the run up) and for the run's outcome.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from herd.declare.spec import TestSpec
    from herd.run.driver import Driver, Outcome
    from herd.run.machine import Machine


@dataclass(frozen=True)
class Declaration:
    """What a run declares: the `herd` marker's arguments, or those of `herd.testing.machines`."""

    machines: object
    networks: object = None
    timeout: object = None
    requires: str | Iterable[str] = ()


class Herd:
    """A run's machines and the driver's functions: the value of the `herd` fixture and of every
    fixture made with `herd.testing.machines`."""

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


@dataclass
class OpenedRun:
    """A run as the plugin's hooks see it: its machines and, for its outcome, whether each test
    that used it passed."""

    herd: Herd
    results: list[bool] = field(default_factory=list)

    @property
    def driver(self) -> Driver:
        return self.herd.driver


RUNS_KEY = pytest.StashKey[dict[str, OpenedRun]]()  # a scope node's runs, by their fixture's name
KEPT_KEY = pytest.StashKey[list[tuple["Driver", "Outcome"]]]()  # the runs --herd-keep holds


def runs_of(item: pytest.Item) -> list[OpenedRun]:
    """The runs the fixtures of a test opened (or were opening when they failed)."""
    names = set(getattr(item, "fixturenames", ()))
    return [
        run
        for node in item.listchain()
        for name, run in node.stash.get(RUNS_KEY, {}).items()
        if name in names
    ]


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


def path_name(text: str) -> str:
    """`text` (a node id) as one path component: characters other than ASCII letters, digits,
    `_`, `.` and `-` turned into `-`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def run_name(text: str) -> str:
    """`text` as a herd test name: `path_name`, cut to the longest name herd takes (a parametrized
    test's ids can be longer)."""
    from herd.declare.spec import TEST_NAME_MAX_BYTES

    return path_name(text)[:TEST_NAME_MAX_BYTES].strip("-.") or "test"


def fixture_output_dir(request: pytest.FixtureRequest, name: str) -> Path:
    """The output directory of a run a `herd.testing.machines` fixture opens: the setting's
    directory/<name>, with the pytest-xdist worker's id where there is one (each worker opens a
    session's or module's runs of its own), else a fresh directory of pytest's temporary ones."""
    root = output_dir_setting(request.config)
    if root is None:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        return factory.mktemp(name)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return root / (f"{name}-{worker}" if worker else name)


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


@contextmanager
def opened_run(
    request: pytest.FixtureRequest, name: str, declaration: Declaration, output_dir: Path
) -> Iterator[Herd]:
    """Open a run of `declaration`, named `name`, for the fixture `request` sets up; close it when
    the block ends, or with `--herd-keep` put it on the list the session closes at its end.

    An invalid declaration fails the set-up with its validation messages, and a backend that lacks
    a required capability skips it, before anything starts.
    """
    from herd.declare.script import ScriptSource
    from herd.declare.spec import parse_test
    from herd.errors import SpecError
    from herd.run.driver import Driver, RunOptions

    config = request.config
    try:
        spec = parse_test(name, declaration.machines, None, declaration.timeout, declaration.networks)
    except SpecError as error:
        pytest.fail(str(error), pytrace=False)
    options = RunOptions(backend=backend_setting(config), output_dir=output_dir, terminal=None)
    path = getattr(request.node, "path", None)
    source = ScriptSource(str(Path(path).resolve()) if path else None, None)
    _skip_without_capabilities(spec, declaration.requires, options.backend)
    try:
        driver = Driver(spec, source, options)
    except SpecError as error:
        pytest.fail(str(error), pytrace=False)
    outcome = driver.open()
    run = OpenedRun(Herd(driver))
    request.node.stash.setdefault(RUNS_KEY, {})[request.fixturename] = run
    try:
        yield run.herd
    except BaseException:
        run.results.append(False)
        raise
    finally:
        outcome.passed = bool(run.results) and all(run.results)
        if config.getoption("herd_keep"):
            config.stash[KEPT_KEY].append((driver, outcome))
        else:
            driver.close(outcome)
