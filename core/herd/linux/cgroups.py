"""A cgroup per machine, under `herd/<run id>/` in every hierarchy a container manager uses and in
those of the controllers that limit a machine's memory, CPUs and processes.

systemd-nspawn run with `--keep-unit` (there is no systemd to ask for a scope) places the container
in a `payload` child of the cgroup it was started in: two containers started from one cgroup would
share it. Each machine's manager is therefore started inside a cgroup of its own, which also tells,
after any crash, which processes belong to which run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from functools import cache
from pathlib import Path

from herd.errors import HerdError

ROOT_NAME = "herd"
KILL_WAIT = 10.0  # seconds killed processes get to leave their cgroup
JOIN_AND_EXEC = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


LIMITING = ("memory", "pids", "cpu")
MIB = 1 << 20
CPU_PERIOD = 100_000  # microseconds: the period a CPU quota is counted in


def _cgroup_mounts() -> list[tuple[str, set[str], Path]]:
    """(file system type, mount options, mount point) of every cgroup file system mounted."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            separator = fields.index("-")
            fstype = fields[separator + 1]
            if fstype in ("cgroup", "cgroup2"):
                found.append((fstype, set(fields[separator + 3].split(",")), Path(fields[4])))
    return found


@cache
def hierarchies() -> tuple[Path, ...]:
    """Mount points of the unified (v2) hierarchy and of systemd's named v1 hierarchy, if mounted:
    where every machine's cgroup is made."""
    return tuple(
        point
        for fstype, options, point in _cgroup_mounts()
        if fstype == "cgroup2" or "name=systemd" in options
    )


@cache
def limiting_hierarchies() -> tuple[Path, ...]:
    """Mount points of the v1 hierarchies of the limiting controllers: where a machine's cgroup is
    made only when its limits are set there (`Cgroup.limit`)."""
    return tuple(
        point for fstype, options, point in _cgroup_mounts() if fstype == "cgroup" and options & set(LIMITING)
    )


@cache
def v1_limiting_controllers() -> frozenset[str]:
    """The limiting controllers that have a v1 hierarchy of their own on this host."""
    return frozenset(
        c for fstype, options, _ in _cgroup_mounts() if fstype == "cgroup" for c in options & set(LIMITING)
    )


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def unified_mounted() -> bool:
    """Whether the unified (cgroup2) hierarchy is mounted, alone or beside v1 controllers."""
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split(" - ")[1].startswith("cgroup2 ") for line in mountinfo if " - " in line)


# What a delegated cgroup's new owner may write (besides making cgroups below it).
DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


class Cgroup:
    """One cgroup, present in each hierarchy at the same relative path."""

    def __init__(self, relative: str) -> None:
        self.relative = relative
        self.paths = tuple(root / relative for root in (*hierarchies(), *limiting_hierarchies()))

    def create(self, limited: bool = False) -> None:
        """Make the cgroup; `limited`: in the limiting controllers' v1 hierarchies too, for a
        cgroup below one whose limits are set (`limit`), so that its processes are held to them."""
        for root in (*hierarchies(), *(limiting_hierarchies() if limited else ())):
            (root / self.relative).mkdir(parents=True, exist_ok=True)

    def limit(self, memory_mib: int, cpus: float, pids: int) -> None:
        """Bound what every process in this cgroup and below it may use together: memory (swap
        included, where the kernel counts it), CPU time (`cpus` CPUs' worth) and processes.

        Each limit goes where its controller is: the unified hierarchy (v2) or its own v1 one. In
        v2 the controllers are first enabled down from the root; a controller offered nowhere
        raises `HerdError`, so a machine never runs without the limits it was promised."""
        memory, quota = str(memory_mib * MIB), int(cpus * CPU_PERIOD)
        settings = {
            "memory": [("memory.max", memory), ("memory.swap.max", "0")],
            "pids": [("pids.max", str(pids))],
            "cpu": [("cpu.max", f"{quota} {CPU_PERIOD}")],
        }
        settings_v1 = {
            "memory": [("memory.limit_in_bytes", memory), ("memory.memsw.limit_in_bytes", memory)],
            "pids": [("pids.max", str(pids))],
            "cpu": [("cpu.cfs_period_us", str(CPU_PERIOD)), ("cpu.cfs_quota_us", str(quota))],
        }
        applied = set()
        self.create(limited=True)
        for root, path in zip((*hierarchies(), *limiting_hierarchies()), self.paths, strict=True):
            if (path / "cgroup.controllers").exists():
                enabled = _enable_down_to(root, self.relative)
                chosen = {c: settings[c] for c in enabled if c not in applied}
            else:
                chosen = {c: settings_v1[c] for c in LIMITING if (path / f"{c}.{_PROBE[c]}").exists()}
            for controller, files in chosen.items():
                for name, value in files:
                    if (path / name).exists():
                        _write(path / name, value)
                applied.add(controller)
        if missing := [c for c in LIMITING if c not in applied]:
            raise HerdError(f"cannot limit cgroup {self.relative}: no {' or '.join(missing)} controller here")

    def delegate(self, owner: int) -> None:
        """Hand this cgroup of the unified hierarchy to host id `owner` (a confined machine's
        root), as the kernel's delegation model has it: its directory and the files that move
        processes and enable controllers below it; the limits set on it stay host root's."""
        for path in self.paths:
            if (path / "cgroup.controllers").exists():
                for entry in (path, *(path / name for name in DELEGATED_FILES)):
                    os.chown(entry, owner, owner)

    def command_in(self, argv: list[str]) -> list[str]:
        """`argv`, wrapped so that it runs inside this cgroup.

        A process can only be moved into a cgroup by a write of its PID, which Python's subprocess
        cannot do between fork and exec without preexec_fn (unsafe in a threaded program): a shell
        writes its own PID, then executes `argv`.
        """
        return ["/bin/sh", "-c", JOIN_AND_EXEC, "herd-cgroup", *self.procs_files, "--", *argv]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The `cgroup.procs` files a process writes its PID to, to join this cgroup (in the
        hierarchies where it exists)."""
        return tuple(str(path / "cgroup.procs") for path in self.paths if path.is_dir())

    def pids(self) -> set[int]:
        """Every process in this cgroup and below it."""
        found: set[int] = set()
        for path in self.paths:
            for directory, _, _ in os.walk(path):
                try:
                    with open(os.path.join(directory, "cgroup.procs")) as procs:
                        found.update(int(line) for line in procs if line.strip())
                except FileNotFoundError:
                    continue
        return found

    def kill(self, wait: float = KILL_WAIT) -> None:
        """SIGKILL every process in this cgroup and below it, and wait until they are gone.

        Raises `HerdError` naming the survivors if some are still there after `wait` seconds.
        """
        deadline = time.monotonic() + wait
        pause = 0.001
        while pids := self.pids():
            if time.monotonic() > deadline:
                raise HerdError(f"processes {sorted(pids)} of cgroup {self.relative} survived SIGKILL")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def remove(self) -> None:
        """Remove the cgroup's directories, deepest first; `kill()` first if processes remain."""
        for path in self.paths:
            if not path.exists():
                continue
            for directory, _, _ in os.walk(path, topdown=False):
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(directory)


_PROBE = {"memory": "limit_in_bytes", "pids": "max", "cpu": "cfs_quota_us"}


def _enable_down_to(root: Path, relative: str) -> list[str]:
    """Enable the limiting controllers that the unified hierarchy at `root` offers in every
    ancestor of `root / relative`, from the root down; return those enabled."""
    offered = (root / "cgroup.controllers").read_text().split()
    enabled = [c for c in LIMITING if c in offered]
    parts = Path(relative).parts
    for depth in range(len(parts) if enabled else 0):
        _write(root.joinpath(*parts[:depth]) / "cgroup.subtree_control", " ".join(f"+{c}" for c in enabled))
    return enabled


def machine_cgroup(run_id: str, machine: str) -> Cgroup:
    return Cgroup(f"{ROOT_NAME}/{run_id}/{machine}")


def run_cgroup(run_id: str) -> Cgroup:
    return Cgroup(f"{ROOT_NAME}/{run_id}")
