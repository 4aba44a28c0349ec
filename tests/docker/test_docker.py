"""What is particular to the Docker backend: its containers, images, grants, engines and crashes.

The backend-agnostic suite (tests/integration) and the conformance kit run on it too, through
`--herd-backend docker`; these cases check what only Docker machines have.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import docker
import pytest

from herd import MachineError, Test
from herd.hooks.manager import PLUGINS_GROUP, Plugins
from herd.hooks.types import DeviceGrant, DeviceNode
from herd.plugin import hookimpl
from herd.run.driver import Driver, Outcome, RunOptions
from tests.conftest import ROOT, assert_nothing_left, run_and_check

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="boots real machines: needs root")
HERD = str(Path(sys.executable).with_name("herd"))
RUN_LABEL = "herd.run"
# A unit's processes are in the container's device cgroup, where Docker's device rules hold (the
# command agent is not: it runs as the host's root in the machine's namespaces).
OPEN_FUSE_IN_A_UNIT = "systemd-run --wait --pipe --quiet sh -c 'exec 3<>/dev/fuse'"


@pytest.fixture
def engine() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture
def run(tmp_path: Path) -> Callable[[Test], Outcome]:
    return partial(run_and_check, backend="docker", output_dir=tmp_path / "out")


def test_machines_boot_systemd_on_the_unified_hierarchy_and_leave_no_image(
    run: Callable[[Test], Outcome], engine: docker.DockerClient, tmp_path: Path
) -> None:
    def script(m, driver, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        assert m.succeed("stat -fc %T /sys/fs/cgroup").strip() == "cgroup2fs"
        assert m.succeed("cat /proc/1/cgroup").splitlines()[-1] == "0::/init.scope"
        assert m.succeed("systemctl is-system-running").strip() == "running"
        assert m.succeed("hostname").strip() == "m"
        assert m.succeed("cat /srv/placed") == "by the test\n"
        container = engine.containers.get(f"herd-{driver.run_id}-m")
        assert container.labels[RUN_LABEL] == driver.run_id
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"  # herd's bridges, not Docker's

    run(Test(name="warm", machines={"m": {}}, script="start_all()"))  # the base image exists now
    images = sorted(image.id for image in engine.images.list(all=True))
    test = Test(name="boot", machines={"m": {"files": {"/srv/placed": "by the test\n"}}}, script=script)
    outcome = run(test)
    assert outcome.passed, outcome.error
    assert sorted(image.id for image in engine.images.list(all=True)) == images
    assert not engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={outcome.run_id}"})
    assert "Reached target herd.target" in (tmp_path / "out" / "m" / "console.log").read_text()


def test_a_docker_container_an_nspawn_container_and_a_vm_share_a_network(tmp_path: Path) -> None:
    names = ("docker", "nspawn", "vm")

    def script(docker, nspawn, vm, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        for machine in (docker, nspawn, vm):
            for other in names:
                machine.succeed(f"ping -c 1 -W 5 {other}")
        assert "docker" in docker.succeed("systemd-detect-virt --container")
        assert "systemd-nspawn" in nspawn.succeed("systemd-detect-virt --container")
        assert vm.succeed("systemd-detect-virt --vm").strip() in {"qemu", "kvm"}

    test = Test(
        name="three",
        machines={name: {"backend": "qemu" if name == "vm" else name} for name in names},
        script=script,
    )
    outcome = test.run(output_dir=tmp_path / "out", terminal=None)
    assert_nothing_left(outcome.run_id)
    assert outcome.passed, outcome.error


class FuseGrant:
    """A device plugin of the test's own: /dev/fuse, a read-only directory and a variable."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared

    @hookimpl
    def herd_device_grant(self, request: str) -> DeviceGrant | None:
        if request != "/dev/fuse":
            return None
        return DeviceGrant(
            request,
            nodes=(DeviceNode("/dev/fuse", "/dev/fuse", "c", 10, 229),),
            mounts=((str(self.shared), "/mnt/granted", True),),
            environment={"HERD_FUSE": "granted"},
        )


def test_a_device_grant_is_applied_with_dockers_own_means(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    plugins = Plugins()
    plugins.load(PLUGINS_GROUP)
    plugins.register(FuseGrant(shared), name="test:fuse")  # registered last, so asked first

    def script(granted, plain, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        granted.succeed("test -c /dev/fuse", OPEN_FUSE_IN_A_UNIT)
        assert granted.succeed("echo $HERD_FUSE") == "granted\n"
        assert granted.succeed("systemd-run --wait --pipe --quiet sh -c 'echo $HERD_FUSE'") == "granted\n"
        assert granted.succeed("cat /mnt/granted/note") == "from the host\n"
        granted.fail("touch /mnt/granted/other")  # granted read-only
        plain.fail('test -n "$HERD_FUSE"', "test -e /mnt/granted")
        # systemd makes the kernel's static nodes, /dev/fuse among them, where it may; without
        # Docker's device rule they are of no use. A machine in a user namespace cannot make one.
        if plain.execute("test -c /dev/fuse || mknod /dev/fuse c 10 229")[0] == 0:
            plain.fail(OPEN_FUSE_IN_A_UNIT)
            plain.fail("exec 3<>/dev/fuse")  # commands are held to the same rules as units
        else:
            plain.fail("test -e /dev/fuse")

    test = Test(name="grant", machines={"granted": {"devices": ["/dev/fuse"]}, "plain": {}}, script=script)
    options = RunOptions(backend="docker", output_dir=tmp_path / "out", terminal=None)
    outcome = Driver(test.spec, test.source, options, plugins).run()
    assert_nothing_left(outcome.run_id)
    assert outcome.passed, outcome.error


def test_a_remote_engine_is_refused_clearly(
    run: Callable[[Test], Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://engine.invalid:2376")  # never contacted
    outcome = run(Test(name="remote", machines={"m": {}}, script="start_all()"))
    assert isinstance(outcome.error, MachineError)
    message = str(outcome.error)
    assert "machine m cannot start: the Docker engine at tcp://engine.invalid:2376 (DOCKER_HOST)" in message
    assert "is not on this host" in message and "herd's bridges" in message


VICTIM = """
import herd, os, time

def script(alpha, start_all):
    start_all()
    open({ready!r}, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists({go!r}) and time.monotonic() < deadline:
        time.sleep(0.01)
    alpha.succeed("echo after")

test = herd.Test(name="victim", machines={{"alpha": {{}}}}, script=script)
"""


class Victim:
    """A `herd run` on Docker paused in its script, its machine up."""

    def __init__(self, tmp_path: Path) -> None:
        self.ready, self.go = tmp_path / "ready", tmp_path / "go"
        test_file = tmp_path / "victim.py"
        test_file.write_text(textwrap.dedent(VICTIM.format(ready=str(self.ready), go=str(self.go))))
        self.process = subprocess.Popen(
            [HERD, "run", str(test_file), "--backend", "docker", "-o", str(tmp_path / "out")],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stderr is not None
        self.run_id = re.search(r"run ([a-z0-9]{5})", self.process.stderr.readline()).group(1)  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert time.monotonic() < deadline, "the machine did not boot"
            assert self.process.poll() is None, self.process.stderr.read()
            time.sleep(0.01)

    def finish(self) -> tuple[int, str]:
        self.go.touch()
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr


def test_herd_clean_removes_the_containers_of_a_killed_run(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    victim = Victim(tmp_path)
    victim.process.kill()
    victim.process.wait()
    by_run = {"label": f"{RUN_LABEL}={victim.run_id}"}
    assert engine.containers.list(filters=by_run), "a killed run leaves its container running"
    result = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
    assert f"docker container herd-{victim.run_id}-alpha" in result.stdout
    assert not engine.containers.list(all=True, filters=by_run)
    assert_nothing_left(victim.run_id)


def test_a_killed_init_fails_the_next_command_at_once(tmp_path: Path, engine: docker.DockerClient) -> None:
    victim = Victim(tmp_path)
    container = engine.containers.get(f"herd-{victim.run_id}-alpha")
    init = container.attrs["State"]["Pid"]
    os.kill(init, signal.SIGKILL)
    while os.path.exists(f"/proc/{init}"):
        time.sleep(0.005)
    started = time.monotonic()
    status, stderr = victim.finish()
    assert status == 1
    assert "machine alpha is not running (its systemd was killed by SIGKILL)" in stderr
    assert time.monotonic() - started < 10
    assert_nothing_left(victim.run_id)
