"""Host limits that many machines at once run into, checked and raised before they boot.

Containers that share the host's root user share its inotify quota
(`fs.inotify.max_user_instances`, often 128). A booting container's systemd takes about five
instances and keeps four: past about 25 containers, boots stall with "Failed to create inotify
object: Too many open files" and basic.target never comes. herd counts what is in use, adds what
the run's containers need (with a margin), and raises the limit when it falls short, saying so.
The limit stays raised: lowering it again could stall another run on the host. For the same
reason a run never lowers what another raised meanwhile: runs count, compare and write under one
lock (`/run/lock/herd-inotify.lock`), and write only a limit above the one in force.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from herd.errors import HerdError

INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INSTANCES_PER_CONTAINER = 8  # about five while booting, four after: twice that, for headroom
SPARE_INSTANCES = 64  # for the host's own programs
RAISED_AT_LEAST_TO = 1024
QUOTA_LOCK = Path("/run/lock/herd-inotify.lock")  # the host's, not a run's: outside /run/herd


def inotify_instances_in_use() -> int:
    """inotify instances open on this host now (all users: herd's machines run as root)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                if os.readlink(fd.path) == "anon_inode:inotify":
                    count += 1
        except OSError:
            continue
    return count


@dataclass(frozen=True)
class InotifyPlan:
    limit: int
    in_use: int
    needed: int

    @property
    def short(self) -> bool:
        return self.limit < self.needed

    @property
    def raise_to(self) -> int:
        return max(self.needed, RAISED_AT_LEAST_TO)


def inotify_plan(containers: int) -> InotifyPlan | None:
    """What `containers` more containers need of the inotify quota, or None if it cannot be read."""
    try:
        limit = int(INOTIFY_INSTANCES.read_text())
    except (OSError, ValueError):
        return None
    in_use = inotify_instances_in_use()
    return InotifyPlan(limit, in_use, in_use + containers * INSTANCES_PER_CONTAINER + SPARE_INSTANCES)


@contextmanager
def _runs_locked_out() -> Iterator[None]:
    """Hold the host's inotify lock: no other run reads or writes the quota meanwhile."""
    QUOTA_LOCK.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(QUOTA_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def ensure_inotify_instances(containers: int) -> str | None:
    """Raise the inotify quota if `containers` more containers would exhaust it; say what was done.

    Another run may count and raise it at the same time: under the lock, one run's raise is in
    force before the other reads the limit, so neither lowers what the other needs.
    """
    with _runs_locked_out():
        return _raise_if_short(containers)


def _raise_if_short(containers: int) -> str | None:
    plan = inotify_plan(containers)
    if plan is None or not plan.short:
        return None
    try:
        INOTIFY_INSTANCES.write_text(f"{plan.raise_to}\n")
    except OSError as error:
        raise HerdError(
            f"{containers} containers need about {plan.needed} inotify instances, the limit is {plan.limit} "
            f"and herd cannot raise it ({error.strerror}): run "
            f"sysctl -w fs.inotify.max_user_instances={plan.raise_to}"
        ) from None
    return (
        f"raised fs.inotify.max_user_instances from {plan.limit} to {plan.raise_to}: "
        f"{containers} containers need about {containers * INSTANCES_PER_CONTAINER} more, "
        f"and {plan.in_use} are in use (it stays raised)"
    )
