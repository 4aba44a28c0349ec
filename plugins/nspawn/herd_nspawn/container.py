"""One machine as a systemd-nspawn container: boot, commands, network plugs, stop.

Confinement: the container runs in a user namespace of its own whose ids 0…65535 are host ids
`herd.host.idmap.BASE`…: root in it owns nothing on the host. The host's /usr (and /opt, /nix) is bound
read-only through id-mapped mounts, so its files stay host root's on disk and are root's in the
machine; /etc and /var are overlays of the host image's filtered copy made for that id range
(`herd.host.hostsnapshot`). systemd-nspawn gives the container its network namespace (owned by the
container's user namespace, so that its root may bind low ports and open raw sockets), its
capability set and its system-call filter. herd's command agent joins the container's namespaces,
takes on its init's capability bounding set and installs its init's system-call filters (read with
`herd.linux.seccomp`), so every command carries all of that too. The machine's cgroup bounds its memory,
CPU time and processes, the agent's included.

Boot: herd starts systemd-nspawn at once, inside the machine's own cgroup (there is no systemd on
the host to ask for a scope, hence `--register=no --keep-unit`), with `--notify-ready=yes`: nspawn
reports the container's leader PID, then READY=1 once systemd has reached herd.target, on a notify
socket of herd's. No polling, no fixed sleep.

As soon as the leader is known herd plugs the container's veths into its network namespace, then
opens the network gate: a FIFO that the unit `herd-network.service` reads from, ordered before
network.target. So every unit ordered after network.target finds the network up, and plugging
costs the boot nothing. The command agent also starts while the container boots, and enters it
once it is ready.

Device grants are bound in with the rest of the file system; the device policy that lets the
container open them, and nothing else, is attached to its cgroup before nspawn starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from herd.plugin import (
    AgentHandle,
    Attachment,
    Cgroup,
    Channel,
    Gate,
    LaunchPlan,
    NotifySocket,
    NotifyTimeout,
    Overlay,
    SenderExited,
    StopMode,
    granted_nodes,
    hostimage,
    idmap,
    links,
    machine_error,
    seccomp,
    spawn_agent,
    unified_mounted,
    wait_for_exit,
)
from herd_nspawn import devices, grants
from herd_nspawn.grants import escaped

NSPAWN = "systemd-nspawn"
# After a second SIGTERM nspawn kills the container at once; this long we wait for it to do so.
TERMINATE_GRACE = 3.0
GATE_DIRECTORY = "/run/herd"
GATE_UNIT = "herd-network.service"
GATE_UNIT_TEXT = f"""[Unit]
Description=herd: wait until the machine's network is plugged in
DefaultDependencies=no
Before=network-pre.target network.target network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'read -r _ < {GATE_DIRECTORY}/network'
"""


def nspawn_argv(plan: LaunchPlan, gate: Path) -> list[str]:
    root = plan.root
    argv = [
        NSPAWN,
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--notify-ready=yes",
        "--settings=no",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        f"--directory={root.directory}",
        f"--machine={plan.machine.name}",
        f"--private-users={idmap.BASE}:{idmap.COUNT}",
        "--private-users-ownership=off",
        "--private-network",
        "--setenv=SYSTEMD_COLORS=0",
    ]
    argv += [f"--bind-ro={host}:{guest}:idmap" for host, guest in root.read_only_binds]
    argv += [_overlay_argument(overlay) for overlay in root.overlays]
    argv += [f"--bind={host}:{guest}" for host, guest in root.binds]
    argv += grants.bind_arguments(plan.grants, plan.state_dir / "devices", idmap.BASE)
    argv.append(f"--bind-ro={gate}:{GATE_DIRECTORY}")
    argv += list(plan.machine.options.get("extra_args", []))
    if root.init is None:
        argv.append("--boot")
    else:  # the image's own init runs as PID 1, and stops as systemd does
        argv += ["--kill-signal=SIGRTMIN+3", root.init]
    return argv


def _overlay_argument(overlay: Overlay) -> str:
    """An overlay as nspawn takes it: its paths lowest first (overlayfs lists them topmost first),
    then the upper layer, or --overlay-ro without one."""
    paths = [*reversed(overlay.lowers)]
    if overlay.upper is not None:
        paths.append(str(overlay.upper))
    option = "--overlay" if overlay.upper is not None else "--overlay-ro"
    return f"{option}={':'.join(escaped(path) for path in [*paths, overlay.target])}"


def _plant_os_release(directory: Path) -> None:
    """nspawn refuses a root without os-release, and /etc is only mounted inside the container."""
    target = directory / "etc" / "os-release"
    if target.exists():
        return
    for source in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        if source.exists():
            target.write_bytes(source.read_bytes())
            return


@dataclass(eq=False)
class Container(AgentHandle):
    plan: LaunchPlan = field(repr=False, kw_only=True)
    process: subprocess.Popen[bytes] = field(repr=False, kw_only=True)
    netns: int = field(kw_only=True)
    leader: int = field(kw_only=True)
    attachments: list[Attachment] = field(default_factory=list, kw_only=True)

    @property
    def console(self) -> Path:
        return self.plan.log_dir / "console.log"

    def exited(self, within: float = 0.0) -> bool:
        return wait_for_exit(self.process, within)

    def exit_description(self) -> str:
        status = self.process.poll()
        if status is None:
            return self.channel.closed or "its command agent stopped"
        if status < 0:
            return (
                f"its systemd-nspawn was killed by {signal.Signals(-status).name}; "
                "herd will kill what it left running"
            )
        return f"its container exited: systemd-nspawn ended with status {status}"

    def attach(self, attachment: Attachment) -> None:
        links.plug_veth(self.netns, attachment)
        self.attachments.append(attachment)

    def detach(self, attachment: Attachment) -> None:
        links.delete_link(attachment.host_link)
        self.attachments = [a for a in self.attachments if a.host_link != attachment.host_link]

    def _kill_all(self) -> None:
        """SIGKILL the container's init (its PID namespace dies with it), then the whole cgroup."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.leader, signal.SIGKILL)
        if not self.exited(TERMINATE_GRACE):
            self.plan.cgroup.kill()
            self.process.wait()

    def stop(self, mode: StopMode, timeout: float) -> str:
        started = time.monotonic()
        if self.exited():
            how = f"had stopped already: {self.exit_description()}"
        elif mode is StopMode.CRASH:
            self._kill_all()
            how = "crashed (killed)"
        else:
            self.process.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
            if self.exited(timeout):
                how = f"powered off in {time.monotonic() - started:.2f} s"
            else:
                self.process.send_signal(signal.SIGTERM)  # a second one terminates at once
                if self.exited(TERMINATE_GRACE):
                    how = f"did not power off within {timeout:g} s: terminated"
                else:
                    self._kill_all()
                    how = f"did not power off within {timeout:g} s: killed"
        self.release()
        return how

    def release(self) -> None:
        """Free what the container held on the host; its processes are gone by now.

        Its veths go with its network namespace once the agent and our descriptor let go of it.
        """
        self.channel.close()
        self.attachments.clear()
        if self.netns >= 0:
            os.close(self.netns)
            self.netns = -1
        self.plan.cgroup.kill()
        self.plan.cgroup.remove()


def _wait_for(
    plan: LaunchPlan, process: subprocess.Popen[bytes], notify: NotifySocket, variable: str, deadline: float
) -> str:
    """The value of `variable` once nspawn has sent it; raise if the deadline or nspawn's exit comes
    first."""
    pidfd = os.pidfd_open(process.pid)
    try:
        return notify.wait_for(variable, pidfd, deadline)
    except NotifyTimeout:
        what = f"did not boot within {plan.machine.boot_timeout:g} s"
    except SenderExited:
        what = f"did not boot: systemd-nspawn exited with status {process.wait()}"
    finally:
        os.close(pidfd)
    raise machine_error(plan.machine.name, what, plan.log_dir / "console.log")


def _spawn_nspawn(
    plan: LaunchPlan, gate: Path, notify_name: str, console: BinaryIO
) -> subprocess.Popen[bytes]:
    environment = dict(
        os.environ,
        NOTIFY_SOCKET=notify_name,
        TERM="dumb",
    )
    if unified_mounted():
        # On a hybrid host nspawn would give the container v1 hierarchies, where systemd never
        # learns that a cgroup emptied: stopping a user session then stalls.
        environment["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
    return subprocess.Popen(
        plan.cgroup.command_in(nspawn_argv(plan, gate)),
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )


def _agent_cgroup(plan: LaunchPlan) -> Cgroup:
    """The command agent's cgroup: inside the container's own (nspawn's `payload`, which the
    machine's root owns), so that the machine's systemd can move a command's processes into the
    scopes it makes (a login session that `su` opens), and below the machine's limits."""
    agent = Cgroup(f"{plan.cgroup.relative}/payload/herd-agent")
    agent.create(limited=True)
    agent.delegate(idmap.BASE)
    return agent


def start(plan: LaunchPlan) -> Container:
    """Boot the machine of `plan` and return once its systemd reached herd.target."""
    hostimage.add_unit(plan.root, GATE_UNIT, GATE_UNIT_TEXT)
    _plant_os_release(plan.root.directory)
    environment = hostimage.apply_grant_environment(plan.root, plan.grants)
    hostimage.give_to_machine(plan.root, idmap.BASE)
    machine = plan.machine
    plan.cgroup.limit(machine.memory, machine.cpus, machine.pids)
    netns = -1
    gate: Gate | None = None
    channel: Channel | None = None
    try:
        devices.apply_policy(machine.name, plan.cgroup, granted_nodes(plan.grants))
        gate_directory = plan.state_dir / "gate"
        gate_directory.mkdir(exist_ok=True)
        gate = Gate(gate_directory / "network", idmap.BASE)
        notify = NotifySocket(f"@herd/{plan.run_id}/{plan.index}/notify")
        with notify, open(plan.log_dir / "console.log", "ab") as console_file:
            process = _spawn_nspawn(plan, gate_directory, notify.address, console_file)
            try:
                channel = spawn_agent(machine.name)
                deadline = time.monotonic() + machine.boot_timeout
                leader = int(_wait_for(plan, process, notify, "X_NSPAWN_LEADER_PID", deadline))
                netns = os.open(f"/proc/{leader}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                for attachment in plan.attachments:
                    links.plug_veth(netns, attachment)
                gate.open()
                _wait_for(plan, process, notify, "READY", deadline)
                filters = seccomp.filters_of(leader)
                channel.enter(leader, _agent_cgroup(plan).procs_files, environment, filters)
            except BaseException:
                process.kill()  # the cgroup wrapper, if it has not joined the cgroup yet
                plan.cgroup.kill()
                process.wait()
                raise
    except BaseException:
        if channel is not None:
            channel.close()
        if netns >= 0:
            os.close(netns)
        plan.cgroup.kill()
        plan.cgroup.remove()
        raise
    finally:
        if gate is not None:
            gate.close()
    return Container(
        backend=plan.backend,
        name=machine.name,
        access=f"nsenter --target {leader} --all /bin/sh -l",
        plan=plan,
        process=process,
        channel=channel,
        netns=netns,
        leader=leader,
        attachments=list(plan.attachments),
    )
