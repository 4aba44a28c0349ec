"""The `unshare` backend: a machine is a set of fresh namespaces around a small shell init.

It uses only herd's plugin API, `herd.plugin`: the launch plan, the link helpers for the network, a
cgroup for its processes, and the command agent for execution.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herd.plugin import (
    BackendInfo,
    Capability,
    Channel,
    ChannelClosed,
    ExecResult,
    HostCheck,
    Kind,
    LaunchPlan,
    MachineError,
    MachineHandle,
    StopMode,
    hookimpl,
    links,
    spawn_agent,
    wait_for_exit,
)

NAME = "unshare"
# The machine's init: mount its view of the file system, say it is ready, then wait for the end.
INIT = r"""
set -e
name=$1; shift
while [ "$1" != -- ]; do
    case $1 in
        overlay) mount -t overlay "herd-$name" -o "lowerdir=$2,upperdir=$3,workdir=$4" "$5"; shift 5 ;;
        stack) mount -t overlay "herd-$name" -o "lowerdir=$2" "$3"; shift 3 ;;
        bind) mount --bind "$2" "$3"; shift 3 ;;
        robind) mount --bind "$2" "$3"; mount -o remount,bind,ro "$3"; shift 3 ;;
    esac
done
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname "$name"
trap 'kill -TERM -1 2>/dev/null; exit 0' TERM
echo ready
exec >/dev/null
while :; do sleep 3600 & wait $! || true; done
"""
# Mounted by the init itself, or the host's as they are.
NOT_FROM_ROOT = frozenset({"etc", "var", "proc", "sys", "dev", "tmp", "run"})


def host_checks() -> list[HostCheck]:
    from shutil import which

    found = which("unshare")
    return [
        HostCheck(
            "unshare",
            found is not None,
            found or "not found",
            None if found else "apt-get install util-linux",
        )
    ]


@dataclass(eq=False)
class Namespaces(MachineHandle):
    """What this backend keeps about one running machine: herd hands it to the machine's hooks."""

    plan: LaunchPlan = field(repr=False, kw_only=True)
    process: subprocess.Popen[bytes] = field(repr=False, kw_only=True)
    channel: Channel = field(repr=False, kw_only=True)
    netns: int = field(kw_only=True)
    leader: int = field(kw_only=True)


def _mounts(plan: LaunchPlan) -> list[str]:
    arguments: list[str] = []
    for host, guest in plan.root.read_only_binds:
        arguments += ["robind", host, guest]
    for overlay in plan.root.overlays:
        lowers = ":".join(overlay.lowers)
        if overlay.upper is None:
            arguments += ["stack", lowers, overlay.target]
            continue
        work = plan.state_dir / f"{overlay.target.strip('/').replace('/', '-')}-work"
        work.mkdir(exist_ok=True)
        arguments += ["overlay", lowers, str(overlay.upper), str(work), overlay.target]
    read_only = {guest.strip("/") for _, guest in plan.root.read_only_binds}
    read_only |= {overlay.target.strip("/") for overlay in plan.root.overlays if overlay.upper is None}
    for entry in sorted(os.scandir(plan.root.directory), key=lambda e: e.name):
        # the machine's own directories (/root, /home, /srv...) over the host's: only where the
        # host has a mount point, since nothing may be created on the host's own root
        own = entry.is_dir(follow_symlinks=False) and entry.name not in NOT_FROM_ROOT | read_only
        if own and os.path.isdir(f"/{entry.name}") and not os.path.islink(f"/{entry.name}"):
            arguments += ["bind", entry.path, f"/{entry.name}"]
    return [*arguments, "--"]


def _leader_of(unshare_pid: int) -> int:
    """The process `unshare --fork` started: the machine's init, PID 1 of its namespace."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == unshare_pid:
            return int(pid)
    raise MachineError(f"unshare (process {unshare_pid}) has no child")


def start(plan: LaunchPlan) -> Namespaces:
    netns = links.new_netns()
    console = open(plan.log_dir / "console.log", "ab")  # noqa: SIM115 - the child keeps it
    argv = [
        "nsenter", f"--net=/proc/self/fd/{netns}", "--",
        "unshare", "--fork", "--pid", "--mount-proc", "--mount", "--uts", "--ipc", "--propagation", "private",
        "/bin/sh", "-c", INIT, "herd-init", plan.machine.name, *_mounts(plan),
    ]  # fmt: skip
    process = subprocess.Popen(
        plan.cgroup.command_in(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=console,
        pass_fds=(netns,),
        start_new_session=True,
    )
    console.close()
    channel = spawn_agent(plan.machine.name)
    try:
        links.loopback_up(netns)
        for attachment in plan.attachments:
            links.plug_veth(netns, attachment)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], plan.machine.boot_timeout)
        line = process.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            tail = (plan.log_dir / "console.log").read_text(errors="replace")[-2000:]
            raise MachineError(f"machine {plan.machine.name} did not come up; its console:\n{tail}")
        leader = _leader_of(process.pid)
        channel.enter(leader, plan.cgroup.procs_files)
    except BaseException:
        process.kill()
        plan.cgroup.kill()
        process.wait()
        channel.close()
        os.close(netns)
        raise
    return Namespaces(
        backend=NAME,
        name=plan.machine.name,
        access=f"nsenter --target {leader} --all /bin/sh",
        plan=plan,
        process=process,
        channel=channel,
        netns=netns,
        leader=leader,
    )


def stop(handle: Namespaces, mode: StopMode, timeout: float) -> str:
    started = time.monotonic()
    if handle.process.poll() is not None:
        how = "had stopped already"
    elif mode is StopMode.CRASH:
        os.kill(handle.leader, signal.SIGKILL)
        wait_for_exit(handle.process, timeout)
        how = "crashed (killed)"
    else:
        os.kill(handle.leader, signal.SIGTERM)
        if wait_for_exit(handle.process, timeout):
            how = f"stopped in {time.monotonic() - started:.2f} s"
        else:
            os.kill(handle.leader, signal.SIGKILL)
            how = f"did not stop within {timeout:g} s: killed"
    handle.channel.close()
    handle.plan.cgroup.kill()
    if handle.process.poll() is None:
        handle.process.wait()
    if handle.process.stdout is not None:
        handle.process.stdout.close()
    os.close(handle.netns)
    handle.plan.cgroup.remove()
    return how


def validate_options(options: Mapping[str, Any]) -> list[str]:
    return [f"unknown option {name!r}: the unshare backend takes none" for name in options]


@hookimpl
def herd_register_backends(register: Any) -> None:
    register(
        BackendInfo(
            name=NAME,
            kind=Kind.CONTAINER,
            capabilities=frozenset({Capability.SUID}),
            description="plain Linux namespaces made by unshare(1), no systemd (an example backend)",
            priority=10,
            host_checks=host_checks,
            validate_options=validate_options,
        )
    )


@hookimpl
def herd_machine_start(plan: LaunchPlan) -> Namespaces:
    return start(plan)


@hookimpl
def herd_machine_execute(handle: Namespaces, command: str, timeout: float | None, stdin: bytes) -> ExecResult:
    if handle.process.poll() is not None:
        raise MachineError(f"machine {handle.name} is not running")
    try:
        return handle.channel.run(command, timeout, stdin)
    except ChannelClosed as error:
        raise MachineError(f"machine {handle.name} is not running ({error})") from None


@hookimpl
def herd_machine_stop(handle: Namespaces, mode: StopMode, timeout: float) -> str:
    return stop(handle, mode, timeout)
