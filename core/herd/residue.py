"""What a run left on the host, found by the run's own markers.

A run names everything it makes after its id: links `herd<id>…`, the state directory
`/run/herd/<id>`, cgroups `herd/<id>` in each hierarchy, firewall rules commented `herd:<id>`.
Processes are found by their cgroup and by the state directory on their command line. Plugins
report what they made by other means through the `herd_run_leftovers` hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from herd import cgroups, links, network
from herd.rundir import state_root

if TYPE_CHECKING:
    from herd.plugins import Plugins


def _processes(run_id: str, marker: bytes) -> list[str]:
    run_cgroup = f"/{cgroups.ROOT_NAME}/{run_id}"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read()
            with open(f"/proc/{pid}/cgroup") as cgroup:
                in_run = any(
                    f"{run_cgroup}/" in entry or entry.rstrip().endswith(run_cgroup) for entry in cgroup
                )
        except OSError:  # gone meanwhile
            continue
        if in_run or marker in command:
            name = command.split(b"\0")[0].decode(errors="replace")
            found.append(f"process {pid} ({name})")
    return found


def _firewall_rules(run_id: str) -> list[str]:
    found = []
    for command in ("iptables", "ip6tables"):
        if shutil.which(command) is None:
            continue
        listing = subprocess.run([command, "-w", "-S"], capture_output=True, text=True, check=False).stdout
        found += [f"{command} rule: {rule}" for rule in listing.splitlines() if f"herd:{run_id}" in rule]
    return found


def leftovers(run_id: str, plugins: Plugins | None = None) -> list[str]:
    """Everything of run `run_id` that still exists on this host, one description each."""
    state = state_root() / run_id
    found = [f"link {name}" for name in links.link_names(f"{network.LINK_PREFIX}{run_id}")]
    if state.exists():
        found.append(f"state directory {state}")
    found += [f"cgroup {path}" for path in cgroups.run_cgroup(run_id).paths if path.exists()]
    with open("/proc/self/mountinfo") as mountinfo:
        found += [f"mount {line.split()[4]}" for line in mountinfo if str(state) in line]
    found += _firewall_rules(run_id)
    found += _processes(run_id, str(state).encode())
    if plugins is not None:
        for reported in plugins.hook.herd_run_leftovers(run_id=run_id):
            found += reported
    return found
