"""Memory that processes take on the host, as the sum of their proportional set sizes (PSS).

PSS splits each shared page among the processes that map it, so machines that share the host's
/usr are charged their share of it, no more. MemAvailable deltas, by contrast, swing with the page
cache by more than a container's whole footprint.

    python3 pss.py MARKER      # KiB taken by the processes whose cgroup path contains MARKER
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable


def pss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration):  # gone, or a kernel thread
            continue
    return total


def in_cgroup(marker: str) -> list[int]:
    """PIDs of the processes whose cgroup path contains `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup") as cgroup:
                if any(marker in line for line in cgroup):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(pid))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack += children.get(pid, [])
    return found


if __name__ == "__main__":
    print(pss_kib(in_cgroup(sys.argv[1])))
