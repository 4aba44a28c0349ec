"""Killed runs leave nothing for long: `herd clean`, or the next run, removes what they left.

Each case starts a real `herd run` whose script waits, kills something from outside, and checks
that the host ends up as it was before: no herd links, processes, mounts, cgroups or state.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.host.residue import is_live, known_runs, leftovers
from herd.host.rundir import state_root
from herd.linux import cgroups
from herd.linux.links import link_names
from tests.conftest import ROOT, assert_nothing_left

HERD = str(Path(sys.executable).with_name("herd"))
SCRIPT = """
import herd, os, time

def script(alpha, beta, start_all):
    start_all()
    open({ready!r}, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists({go!r}) and time.monotonic() < deadline:
        time.sleep(0.01)
    alpha.succeed("echo after")

test = herd.Test(name="victim", machines={{"alpha": {{}}, "beta": {{}}}}, script=script)
"""


def host_state() -> dict[str, object]:
    """What of herd's kind exists on the host, but for runs that are alive now (other tests' or
    other users'): compared before and after."""
    live = {run_id for run_id in known_runs() if is_live(run_id)}

    def foreign(name: str) -> bool:
        return any(run_id in name for run_id in live)

    herd_cgroups = sorted(
        entry.name
        for hierarchy in (*cgroups.hierarchies(), *cgroups.limiting_hierarchies())
        if (hierarchy / cgroups.ROOT_NAME).is_dir()
        for entry in os.scandir(hierarchy / cgroups.ROOT_NAME)
        if entry.is_dir() and not foreign(entry.name)
    )
    nspawn = []
    for pid in subprocess.run(
        ["pgrep", "-x", "systemd-nspawn"], capture_output=True, text=True, check=False
    ).stdout.split():
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline") as cmdline:
            if alive(int(pid)) and not foreign(cmdline.read()):
                nspawn.append(pid)
    with open("/proc/self/mountinfo") as mountinfo:
        mounts = [line.split()[4] for line in mountinfo if str(state_root()) in line and not foreign(line)]
    root = state_root()
    return {
        "links": [name for name in link_names("herd") if not foreign(name)],
        "cgroups": herd_cgroups,
        "nspawn processes": nspawn,
        "mounts": mounts,
        "state": sorted(e for e in os.listdir(root) if not foreign(e)) if root.is_dir() else [],
    }


def alive(pid: int) -> bool:
    """Whether a process runs: zombies only wait for their parent (here PID 1) to reap them."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def assert_as_before(before: dict[str, object]) -> None:
    """The host is back as it was: processes SIGKILLed a moment ago may still be exiting."""
    deadline = time.monotonic() + 5
    while (now := host_state()) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now == before


class Victim:
    """A `herd run` paused in its script, with both machines up."""

    def __init__(self, tmp_path: Path) -> None:
        self.ready = tmp_path / "ready"
        self.go = tmp_path / "go"
        test_file = tmp_path / "victim.py"
        test_file.write_text(textwrap.dedent(SCRIPT.format(ready=str(self.ready), go=str(self.go))))
        self.process = subprocess.Popen(
            [HERD, "run", str(test_file), "--backend", "nspawn", "-o", str(tmp_path / "out")],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stderr is not None
        header = self.process.stderr.readline()
        self.run_id = re.search(r"run ([a-z0-9]{5})", header).group(1)  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while not self.ready.exists():
            assert time.monotonic() < deadline, "the machines did not boot"
            assert self.process.poll() is None, self.process.stderr.read()
            time.sleep(0.01)

    def machine_processes(self, machine: str, part: str) -> list[int]:
        """The processes in a part of the machine's cgroup (in the unified hierarchy)."""
        pids: set[int] = set()
        for path in cgroups.machine_cgroup(self.run_id, machine).paths:
            for directory, _, _ in os.walk(path / part):
                with open(os.path.join(directory, "cgroup.procs")) as procs:
                    pids |= {int(line) for line in procs if line.strip()}
        return sorted(pids)

    def finish(self) -> tuple[int, str]:
        self.go.touch()
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr


@pytest.fixture
def before() -> Iterator[dict[str, object]]:
    yield host_state()


def test_herd_clean_removes_what_a_killed_run_left(tmp_path: Path, before: dict[str, object]) -> None:
    victim = Victim(tmp_path)
    victim.process.kill()
    victim.process.wait()
    assert leftovers(victim.run_id), "a killed run should have left its machines running"
    assert victim.run_id in known_runs()
    result = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
    assert f"run {victim.run_id}: removed" in result.stdout
    assert_nothing_left(victim.run_id)
    assert_as_before(before)


def test_the_next_run_removes_what_a_killed_run_left(tmp_path: Path, before: dict[str, object]) -> None:
    victim = Victim(tmp_path)
    victim.process.kill()
    victim.process.wait()
    result = subprocess.run(
        [HERD, "run", "examples/ping.py", "--backend", "nspawn", "-o", str(tmp_path / "next")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"a dead run ({victim.run_id}) left behind" in result.stderr
    assert_nothing_left(victim.run_id)
    assert_as_before(before)


def test_a_killed_nspawn_leaves_its_container_only_until_teardown(
    tmp_path: Path, before: dict[str, object]
) -> None:
    victim = Victim(tmp_path)
    [nspawn] = victim.machine_processes("alpha", "supervisor")
    container = victim.machine_processes("alpha", "payload")
    os.kill(nspawn, signal.SIGKILL)
    time.sleep(0.2)
    assert container and all(alive(pid) for pid in container), "the container outlives its nspawn"
    status, stderr = victim.finish()
    assert status == 1
    assert "machine alpha is not running (its systemd-nspawn was killed by SIGKILL" in stderr
    assert_nothing_left(victim.run_id)
    assert not any(alive(pid) for pid in container)
    assert_as_before(before)


def test_a_killed_init_fails_the_next_command_at_once(tmp_path: Path, before: dict[str, object]) -> None:
    victim = Victim(tmp_path)
    init = min(victim.machine_processes("alpha", "payload/init.scope"))
    os.kill(init, signal.SIGKILL)
    while alive(init):
        time.sleep(0.005)
    started = time.monotonic()
    status, stderr = victim.finish()
    assert status == 1
    assert "machine alpha is not running (its container exited" in stderr
    assert time.monotonic() - started < 10
    assert_nothing_left(victim.run_id)
    assert_as_before(before)


def test_a_killed_run_and_nspawn_are_both_cleaned(tmp_path: Path, before: dict[str, object]) -> None:
    victim = Victim(tmp_path)
    [nspawn] = victim.machine_processes("beta", "supervisor")
    victim.process.kill()
    victim.process.wait()
    os.kill(nspawn, signal.SIGKILL)
    listing = subprocess.run([HERD, "clean", "--dry-run"], capture_output=True, text=True, check=True)
    lines = listing.stdout.splitlines()
    [heading] = [i for i, line in enumerate(lines) if line.startswith(f"run {victim.run_id} (dead): ")]
    count = int(lines[heading].split(": ")[1].split()[0])
    left = lines[heading + 1 : heading + 1 + count]
    assert count > 1 and all(line.startswith("  ") for line in left)  # one leftover a line
    assert any(line.startswith("  mount ") for line in left)  # the machines' state file systems
    subprocess.run([HERD, "clean"], capture_output=True, check=True)
    assert_nothing_left(victim.run_id)
    assert_as_before(before)


EXITING = """
import herd, os

def script(alpha, start_all):
    start_all()
    os._exit(0)

test = herd.Test(name="exiting", machines={"alpha": {}}, script=script)
"""


def test_herd_clean_removes_what_a_script_ending_herd_with_os_exit_left(
    tmp_path: Path, before: dict[str, object]
) -> None:
    test_file = tmp_path / "exiting.py"
    test_file.write_text(EXITING)
    result = subprocess.run(
        [HERD, "run", str(test_file), "--backend", "nspawn", "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0  # os._exit ends herd's process as it asks, teardown and all
    run_id = re.search(r"run ([a-z0-9]{5})", result.stderr).group(1)  # type: ignore[union-attr]
    assert "PASS" not in result.stderr and "FAIL" not in result.stderr
    assert leftovers(run_id) and not is_live(run_id)
    cleaned = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
    assert f"run {run_id}: removed" in cleaned.stdout
    assert_nothing_left(run_id)
    assert_as_before(before)
