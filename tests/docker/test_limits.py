"""A Docker machine's memory, cpus and pids are Docker's own, and hold the commands herd runs too.
What a machine meets when it goes past them is the conformance kit's (`herd.testing.conformance.test_limits`),
which runs on docker where its limits hold."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import docker
import pytest

from herd import Test
from herd.run.driver import Outcome
from tests.conftest import run_and_check

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="boots real machines: needs root")
# Hybrid hosts: Docker applies the limits with v1 controllers, which herd leaves its containers in.
V1_CONTROLLERS = all(
    Path(f"/sys/fs/cgroup/{name}/cgroup.procs").exists() for name in ("cpu", "memory", "pids")
)
needs_v1 = pytest.mark.skipif(
    not V1_CONTROLLERS, reason="the limits hold on hosts with cgroup v1 controllers (docs/docker.md#limits)"
)


@pytest.fixture
def run(tmp_path: Path) -> Callable[[Test], Outcome]:
    return partial(run_and_check, backend="docker", output_dir=tmp_path / "out")


def _v1_cgroup(pid: int, controller: str) -> Path:
    """The host's directory of the cgroup of host process `pid` in the v1 hierarchy of `controller`."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path(f"/sys/fs/cgroup/{controllers}{path}")
    raise AssertionError(f"process {pid} has no {controller} cgroup")


def _processes_running(cgroup: Path, argv: bytes) -> list[int]:
    """The processes of `cgroup` whose command line is `argv` (NUL-separated)."""
    found = []
    for pid in (cgroup / "cgroup.procs").read_text().split():
        with contextlib.suppress(FileNotFoundError):
            if Path(f"/proc/{pid}/cmdline").read_bytes() == argv:
                found.append(int(pid))
    return found


@needs_v1
def test_cpus_and_the_other_limits_are_dockers_and_hold_the_commands_too(
    run: Callable[[Test], Outcome],
) -> None:
    engine = docker.from_env()

    def script(m, driver, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        container = engine.containers.get(f"herd-{driver.run_id}-m")
        host_config = container.attrs["HostConfig"]
        assert host_config["NanoCpus"] == 500_000_000
        assert host_config["Memory"] == host_config["MemorySwap"] == 256 << 20
        assert host_config["PidsLimit"] == 1000
        init = int(container.attrs["State"]["Pid"])
        cpu, memory, pids = (_v1_cgroup(init, name) for name in ("cpu", "memory", "pids"))
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert int((memory / "memory.limit_in_bytes").read_text()) == 256 << 20
        assert (pids / "pids.max").read_text().strip() == "1000"
        m.succeed("sleep 300 >/dev/null 2>&1 &")  # a command's process, in the same cgroups
        # The background job may exec sleep only after its shell has ended.
        m.wait_until_succeeds("pgrep -x sleep", timeout=10)
        for cgroup in (cpu, memory, pids):
            assert _processes_running(cgroup, b"sleep\x00300\x00"), f"the command is not in {cgroup}"

    machines = {"m": {"cpus": 0.5, "memory": "256M", "pids": 1000}}
    outcome = run(Test(name="cpus", machines=machines, script=script))
    assert outcome.passed, outcome.error
