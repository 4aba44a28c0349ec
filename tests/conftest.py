"""What herd's own tests share.

tests/unit needs neither root nor a backend. tests/integration boots real machines on the backend
that `--herd-backend` (or $HERD_BACKEND, or the installed default) selects, and skips what needs a
capability that backend lacks; tests/nspawn and tests/external test one backend each. Every test
that runs machines checks afterwards that the run left nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from herd import Test
from herd.hooks.manager import Plugins
from herd.hooks.types import BackendInfo, Capability
from herd.host.residue import leftovers
from herd.run.driver import Outcome
from herd.testing.pytest_plugin import backend_setting

ROOT = Path(__file__).resolve().parents[1]
NEEDS_ROOT = ("integration", "nspawn", "docker", "qemu", "external", "providers", "images")
# Debian packages the tests of `packages` install in machines: small ones the host lacks (the
# broker's unit runs as a user its package adds).
BROKER = "mosquitto"
CLIENTS = "mosquitto-clients"
SMALL = "hello"
TEST_PACKAGES = (BROKER, CLIENTS, SMALL)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="boots real machines: needs root")
    for item in items:
        if Path(item.path).relative_to(ROOT / "tests").parts[0] in NEEDS_ROOT:
            item.add_marker(skip)


def start_herd_run(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `herd run ARGS` in the background; return it and its run id, read from its first line."""
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("herd")), "run", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stderr is not None
    first_line = process.stderr.readline()
    found = re.search(r"run ([a-z0-9]{5})", first_line)
    assert found is not None, f"herd run said: {first_line}"
    return process, found.group(1)


def assert_nothing_left(run_id: str) -> None:
    left = leftovers(run_id, Plugins().load_all())
    assert not left, f"run {run_id} left: {left}"


def run_ids(output: Path) -> list[str]:
    """The run ids in the logs under `output` (one directory per run, as the pytest plugin makes them)."""
    found = []
    for log in output.glob("*/log.txt"):
        match = re.search(r"· run ([a-z0-9]{5})", log.read_text())
        if match:
            found.append(match.group(1))
    return found


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config) -> BackendInfo:
    """The backend the integration tests run on."""
    plugins = Plugins()
    name = backend_setting(pytestconfig) or os.environ.get("HERD_BACKEND") or plugins.default_backend()
    return plugins.backend(name)


@pytest.fixture
def require(backend: BackendInfo) -> Callable[[Capability], None]:
    """Call with a capability to skip the test unless the backend under test declares it."""

    def check(capability: Capability) -> None:
        if capability not in backend.capabilities:
            pytest.skip(f"backend {backend.name!r} lacks the {capability.value!r} capability")

    return check


def run_and_check(test: Test, backend: str, output_dir: Path, **options: Any) -> Outcome:
    """Run a herd.Test quietly on `backend` with its output in `output_dir`; check that it left
    nothing behind."""
    outcome = test.run(backend=backend, output_dir=output_dir, terminal=None, **options)
    assert_nothing_left(outcome.run_id)
    return outcome


@pytest.fixture
def run_test(backend: BackendInfo, tmp_path: Path) -> Callable[..., Outcome]:
    """Run a herd.Test on the backend under test, output under tmp_path/out (`run_and_check`)."""
    return partial(run_and_check, backend=backend.name, output_dir=tmp_path / "out")


@pytest.fixture
def herd_cli(backend: BackendInfo) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `herd` command (`herd run` on the backend under test)."""

    def call(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(Path(sys.executable).with_name("herd")), *args]
        if args and args[0] == "run":
            argv += ["--backend", backend.name]
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)

    return call


def installed(package: str) -> bool:
    query = ["dpkg-query", "-W", "-f=${Status}", package]
    return subprocess.run(query, capture_output=True, text=True, check=False).stdout.startswith("install ok")


def _known_to_apt(package: str) -> bool:
    policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False)
    return "Candidate:" in policy.stdout and "Candidate: (none)" not in policy.stdout


@pytest.fixture(scope="session")
def apt_ready() -> None:
    """The packages these tests install, which the host must not have, and apt knows of (the host's
    package lists are fetched from its mirror once where they lack them)."""
    if shutil.which("apt-get") is None:
        pytest.skip("packages are installed with apt, which this host lacks")
    for package in TEST_PACKAGES:
        if installed(package):
            pytest.skip(f"the host has {package} installed: these tests need packages it lacks")
    if not all(map(_known_to_apt, TEST_PACKAGES)):
        subprocess.run(["apt-get", "update", "--quiet"], check=True, capture_output=True)
