"""What runs left on the host, found by the runs' own markers, and its removal.

A run names everything the core makes after its id: the lock `/run/herd/<id>.lock` it holds while
it lives, the state directory `/run/herd/<id>`, cgroups `herd/<id>` in each hierarchy. Its
processes are found by their cgroup and by the state directory on their command line. Plugins
report and remove what they made (a network provider's links and firewall rules, a Docker
engine's containers) through the `herd_run_leftovers` and `herd_reap` hooks, and name the runs
they see marks of through `herd_known_runs`.

A run is dead when nobody holds its lock: `herd clean` and the start of every run reap dead runs.
A live run's resources are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from herd.host.rundir import ID_LENGTH, LOCK_SUFFIX, lock_path, mounts, state_root, try_lock, unmount_all
from herd.linux import cgroups

if TYPE_CHECKING:
    from herd.hooks.manager import Plugins

CLAIM_PREFIX = ".claim-"
STALE_CLAIM_AGE = 60.0  # seconds


def _run_cgroup_marker(run_id: str) -> str:
    return f"/{cgroups.ROOT_NAME}/{run_id}"


def _processes(run_id: str) -> dict[int, str]:
    """PID and command of every process of the run: in its cgroup, or naming its state directory."""
    marker = str(state_root() / run_id).encode()
    run_cgroup = _run_cgroup_marker(run_id)
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie holds nothing but its number, until its parent reaps it
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read()
            with open(f"/proc/{pid}/cgroup") as cgroup:
                in_run = any(
                    f"{run_cgroup}/" in entry or entry.rstrip().endswith(run_cgroup) for entry in cgroup
                )
        except OSError:  # gone meanwhile
            continue
        if in_run or marker in command:
            found[int(pid)] = command.split(b"\0")[0].decode(errors="replace")
    return found


def leftovers(run_id: str, plugins: Plugins | None = None) -> list[str]:
    """Everything of run `run_id` that still exists on this host, one description each."""
    state = state_root() / run_id
    found = []
    if state.exists():
        found.append(f"state directory {state}")
    if lock_path(run_id).exists():
        found.append(f"lock {lock_path(run_id)}")
    found += [f"cgroup {path}" for path in cgroups.run_cgroup(run_id).paths if path.exists()]
    found += [f"mount {point}" for point in mounts(run_id)]
    found += [f"process {pid} ({command})" for pid, command in _processes(run_id).items()]
    if plugins is not None:
        for reported in plugins.hook.herd_run_leftovers(run_id=run_id):
            found += reported
    return found


def known_runs(plugins: Plugins | None = None) -> set[str]:
    """The ids of every run that left a mark on this host, live or dead: the core's, and those the
    plugins of `plugins` see (`herd_known_runs`)."""
    root = state_root()
    entries = os.listdir(root) if root.is_dir() else []
    ids = {e.removesuffix(LOCK_SUFFIX) for e in entries if not e.startswith(".")}
    for hierarchy in (*cgroups.hierarchies(), *cgroups.limiting_hierarchies()):
        herd_root = hierarchy / cgroups.ROOT_NAME
        if herd_root.is_dir():
            ids |= {entry.name for entry in os.scandir(herd_root) if entry.is_dir()}
    if plugins is not None:
        for seen in plugins.hook.herd_known_runs():
            ids.update(seen)
    return {run_id for run_id in ids if len(run_id) == ID_LENGTH}


def is_live(run_id: str) -> bool:
    """Whether a live process holds the run's lock."""
    descriptor = try_lock(lock_path(run_id))
    if descriptor is None:
        return lock_path(run_id).exists()
    os.close(descriptor)
    return False


def reap(run_id: str, plugins: Plugins | None = None) -> list[str]:
    """Remove everything dead run `run_id` left; return what was removed. Refuses a live run."""
    descriptor = try_lock(lock_path(run_id))
    if descriptor is None and lock_path(run_id).exists():
        return []  # live: its owner holds the lock
    removed: list[str] = []
    try:
        processes = _processes(run_id)
        run_cgroup = cgroups.run_cgroup(run_id)
        run_cgroup.kill()
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        removed += [f"process {pid} ({command})" for pid, command in processes.items()]
        removed += [f"mount {point}" for point in unmount_all(run_id)]
        if plugins is not None:
            for reported in plugins.hook.herd_reap(run_id=run_id):
                removed += reported
        removed += [f"cgroup {path}" for path in run_cgroup.paths if path.exists()]
        run_cgroup.remove()
        state = state_root() / run_id
        if state.exists():
            shutil.rmtree(state, ignore_errors=True)
            removed.append(f"state directory {state}")
        if lock_path(run_id).exists():
            lock_path(run_id).unlink()
            removed.append(f"lock {lock_path(run_id)}")
    finally:
        if descriptor is not None:
            os.close(descriptor)
    return removed


def dead_runs(plugins: Plugins | None = None) -> list[str]:
    """The runs that left marks on this host and whose process is gone (`known_runs`)."""
    return sorted(run_id for run_id in known_runs(plugins) if not is_live(run_id))


def reap_dead(plugins: Plugins | None = None, runs: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Reap every dead run on this host (or those of `runs`); return what was removed, by run id."""
    reaped: dict[str, list[str]] = {}
    for run_id in dead_runs(plugins) if runs is None else runs:
        try:
            removed = reap(run_id, plugins)
        except Exception as error:  # one stuck run must not keep the others from being reaped
            reaped[run_id] = [f"failed: {error}"]
            continue
        if removed:
            reaped[run_id] = removed
    _remove_stale_claims()
    return reaped


def _remove_stale_claims() -> None:
    """Claim files whose maker died before it linked them: unlocked, and older than a run's start
    takes (a new one is made before it is locked)."""
    root = state_root()
    if not root.is_dir():
        return
    for entry in os.scandir(root):
        if entry.name.startswith(CLAIM_PREFIX) and time.time() - entry.stat().st_mtime > STALE_CLAIM_AGE:
            descriptor = try_lock(Path(entry.path))
            if descriptor is not None:
                Path(entry.path).unlink(missing_ok=True)
                os.close(descriptor)
