"""One machine as a Docker container that boots systemd: start, commands, network plugs, stop.

Start: the container runs herd's base image (see `herd_docker.image`) with the machine root bound
in, no Docker network (network mode `none`) and the host's cgroup namespace. Its first process is
a shell that waits on a FIFO, the gate, before it becomes systemd. Meanwhile herd moves that
process into the machine's cgroup (`payload`, which holds the agent's, `herd-agent`), so that
herd's cleanup and reaper find every process of the machine, as they do for nspawn; plugs the
machine's veths into the container's network namespace; and opens the gate. The shell then
executes systemd in a cgroup namespace of its own whose root is that cgroup, with the host's
unified hierarchy below it bound at /sys/fs/cgroup: systemd runs on the unified hierarchy, also
on hybrid hosts, where v1 would never tell it that a cgroup emptied (stopping a user session would
stall). It reports READY=1 on a socket of herd's once it reached herd.target: no polling, no fixed
sleep.

Commands go through herd's command agent, which enters the container's namespaces. A stop
powers systemd off with SIGRTMIN+3 (Docker's stop signal for it), escalates to SIGKILL after the
timeout, and removes the container: nothing of a machine outlives its stop.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herd.plugin import (
    COUNT,
    LIMITING,
    AgentHandle,
    Attachment,
    Cgroup,
    Channel,
    Gate,
    HerdError,
    LaunchPlan,
    MachineError,
    NotifySocket,
    NotifyTimeout,
    SenderExited,
    StopMode,
    hostimage,
    links,
    machine_error,
    seccomp,
    spawn_agent,
    twin_nodes,
    v1_limiting_controllers,
)
from herd_docker import engine, image, rootfs
from herd_docker.console import Console

GUEST_DIRECTORY = "/run/herd"  # herd's gate and notify socket, inside the container
WRAPPER = (
    "exec >>/dev/console 2>&1 </dev/null; "
    f"read -r _ <{GUEST_DIRECTORY}/gate || exit 1; "
    "exec unshare --cgroup /lib/systemd/systemd"
)
POWER_OFF = signal.SIGRTMIN + 3  # systemd's signal to halt and power off
# systemd-nspawn's default capabilities and CAP_NET_ADMIN for the machine's own network, by number
# (capability.h): those the host lacks in its bounding set are left out, or runc refuses to start.
CAPABILITIES = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_OWNER": 15, "SYS_CHROOT": 18,
    "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31,
}  # fmt: skip
KILL_WAIT = 10.0  # seconds a SIGKILLed container gets to exit
# The cgroup v1 controllers that hold a container to its device rules and resource limits.
LIMITING_CONTROLLERS = frozenset({"devices", "memory", "pids", "cpu"})


def _unified(cgroup: Cgroup, machine: str) -> Path:
    """`cgroup`'s directory in the unified hierarchy, which systemd in the container runs on."""
    for path in cgroup.paths:
        if (path / "cgroup.controllers").exists():
            return path
    raise MachineError(
        f"machine {machine}: the Docker backend needs the unified cgroup hierarchy (cgroup2), "
        "which this host does not mount"
    )


def _capabilities() -> list[str]:
    """The capabilities of `CAPABILITIES` that the host's bounding set holds."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("CapBnd:"))
    bounding = int(line.split()[1], 16)
    return [name for name, bit in CAPABILITIES.items() if bounding >> bit & 1]


def _grant_options(plan: LaunchPlan, shift: int) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """Device grants as Docker applies them: device rules and bind mounts (their environment is
    the machine's, through `hostimage.apply_grant_environment`). Each node is given through its
    twin (`herd.host.idmap.twin_nodes`), which a confined machine's root may open as host root opens
    the node; the engine takes the device numbers from it."""
    devices = [
        f"{twin}:{node.guest_path}:{node.access}"
        for node, twin in twin_nodes(plan.grants, plan.state_dir / "devices", shift)
    ]
    return devices, [mount for grant in plan.grants for mount in grant.mounts]


@dataclass(eq=False)
class Container(AgentHandle):
    plan: LaunchPlan = field(repr=False, kw_only=True)
    container_id: str = field(kw_only=True)
    pid: int = field(kw_only=True)
    pidfd: int = field(kw_only=True)
    console: Console = field(repr=False, kw_only=True)
    mounts: list[Path] = field(repr=False, kw_only=True)  # on the host, below the state directory

    def exited(self, within: float = 0.0) -> bool:
        with selectors.DefaultSelector() as selector:
            selector.register(self.pidfd, selectors.EVENT_READ)
            return bool(selector.select(max(within, 0)))

    def exit_description(self) -> str:
        import docker

        if not self.exited():
            return self.channel.closed or "its command agent stopped"
        try:
            state = engine.client().api.inspect_container(self.container_id)["State"]
        except docker.errors.NotFound:
            return "its container was removed from the Docker engine"
        status = state.get("ExitCode")
        if state.get("OOMKilled"):
            return f"its container ran out of memory (exit status {status})"
        if isinstance(status, int) and status > 128 and status - 128 in signal.valid_signals():
            return f"its systemd was killed by {signal.Signals(status - 128).name}"
        return f"its container exited with status {status}"

    def attach(self, attachment: Attachment) -> None:
        _plug(self.pid, (attachment,))

    def detach(self, attachment: Attachment) -> None:
        links.delete_link(attachment.host_link)

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # its PID namespace, and every process in it, ends
        self.exited(KILL_WAIT)

    def stop(self, mode: StopMode, timeout: float) -> str:
        started = time.monotonic()
        if self.exited():
            how = f"had stopped already: {self.exit_description()}"
        elif mode is StopMode.CRASH:
            self._kill()
            how = "crashed (killed)"
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, POWER_OFF)
            if self.exited(timeout):
                how = f"powered off in {time.monotonic() - started:.2f} s"
            else:
                self._kill()
                how = f"did not power off within {timeout:g} s: killed"
        self.release()
        return how

    def release(self) -> None:
        """Remove the container and free what it held on the host; its init has exited."""
        self.channel.close()
        _remove(self.container_id)
        self.console.close()
        rootfs.unmount(self.mounts)
        os.close(self.pidfd)
        self.plan.cgroup.kill()
        self.plan.cgroup.remove()


def _remove(container_id: str) -> None:
    import docker

    with contextlib.suppress(docker.errors.NotFound):
        engine.client().api.remove_container(container_id, force=True, v=True)


def _plug(pid: int, attachments: tuple[Attachment, ...], loopback: bool = False) -> None:
    """Plug veths into the network namespace of process `pid` (the container's init)."""
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if loopback:
            links.loopback_up(netns)
        for attachment in attachments:
            links.plug_veth(netns, attachment)
    finally:
        os.close(netns)


class _HostSide:
    """What herd keeps on the host while a machine boots: the gate and the notify socket.

    They live in `<state dir>/docker`, bound at /run/herd in the container, and belong to the
    container's root, who reads and writes them.
    """

    def __init__(self, plan: LaunchPlan, shift: int) -> None:
        self.directory = plan.state_dir / "docker"
        self.directory.mkdir(exist_ok=True)
        os.chown(self.directory, shift, shift)
        self.gate = Gate(self.directory / "gate", shift)
        self.notify = NotifySocket(str(self.directory / "notify"))
        os.chown(self.notify.address, shift, shift)

    def close(self) -> None:
        self.gate.close()
        self.notify.close()


def _limits(plan: LaunchPlan) -> dict[str, Any]:
    """The machine's memory (no swap beyond it), CPUs and processes as Docker's create takes them."""
    machine = plan.machine
    memory = machine.memory << 20
    return {
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": round(machine.cpus * 1e9),
        "pids_limit": machine.pids,
    }


def _create(
    plan: LaunchPlan,
    host: _HostSide,
    console: Console,
    mounts: rootfs.Mounts,
    payload: Path,
    *,
    shift: int,
) -> Any:
    """Create and start the container; return its SDK object. Where the engine remaps it into a
    user namespace (`shift`), it runs under Docker's default system-call filter too."""
    from docker.types import Mount

    devices, grant_mounts = _grant_options(plan, shift)
    user_image = plan.machine.options.get("image")
    binds = [
        *rootfs.binds(plan.root, mounts, host_os=user_image is None),
        (str(host.directory), GUEST_DIRECTORY, False),
        (console.terminal, "/dev/console", False),
        (str(payload), "/sys/fs/cgroup", False),
        *grant_mounts,
    ]
    container = engine.client().containers.create(
        user_image or image.ensure(plan.root.directory),
        entrypoint=["/bin/sh", "-c", WRAPPER],
        name=f"herd-{plan.run_id}-{plan.machine.name}",
        hostname=plan.machine.name,
        labels={engine.RUN_LABEL: plan.run_id, engine.MACHINE_LABEL: plan.machine.name},
        environment={
            "container": "docker",
            "NOTIFY_SOCKET": f"{GUEST_DIRECTORY}/notify",
            "SYSTEMD_COLORS": "0",
        },
        network_mode="none",
        # Docker turns IPv6 off in containers outside its IPv6 networks; herd's networks may have it.
        sysctls={"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0"},
        cgroupns="host",
        cap_add=_capabilities(),
        security_opt=["apparmor=unconfined", *([] if shift else ["seccomp=unconfined"])],
        stop_signal="SIGRTMIN+3",
        tmpfs={"/run": "mode=0755"},
        mounts=[Mount(guest, source, type="bind", read_only=ro) for source, guest, ro in binds],
        devices=devices,
        **_limits(plan),
    )
    assert container.id is not None  # typed optional by the SDK; a created container has one
    try:
        container.start()
        container.reload()
    except BaseException:
        _remove(container.id)
        raise
    return container


def _wait_until_ready(plan: LaunchPlan, notify: NotifySocket, console: Path, pidfd: int) -> None:
    """Wait for systemd's READY=1; raise if it exits or the boot times out."""
    timeout = plan.machine.boot_timeout
    try:
        notify.wait_for("READY", pidfd, time.monotonic() + timeout)
    except NotifyTimeout:
        raise machine_error(plan.machine.name, f"did not boot within {timeout:g} s", console) from None
    except SenderExited:
        raise machine_error(plan.machine.name, "did not boot: its container exited", console) from None


def _image_layers(plan: LaunchPlan, shift: int) -> Path | None:
    """For a machine of a user's image: the image's own /etc and /var, its units hidden."""
    name = plan.machine.options.get("image")
    if name is None:
        return None
    directories = tuple(o.target.strip("/") for o in plan.root.overlays if o.upper is not None)
    try:
        lowers = image.exported(name, directories, plan.run_id, shift)
    except HerdError as error:
        raise MachineError(f"machine {plan.machine.name} cannot start: {error}") from None
    rootfs.hide_enabled_units(plan.root, lowers)
    return lowers


def _pidfd(plan: LaunchPlan, pid: int, console: Path) -> int:
    """A pidfd of the container's first process, which may have ended already (PID 0 then)."""
    try:
        if pid > 0:
            return os.pidfd_open(pid)
    except ProcessLookupError:
        pass
    raise machine_error(plan.machine.name, "did not boot: its container exited at once", console)


def limits_hold() -> bool:
    """Whether a machine's memory, cpus and pids hold here: Docker applies them in the v1
    hierarchies of their controllers, where herd leaves its containers; on a host with the unified
    hierarchy alone herd moves the container's processes out of Docker's cgroup."""
    return v1_limiting_controllers() == frozenset(LIMITING)


def _docker_cgroups_of(pid: int) -> tuple[str, ...]:
    """The `cgroup.procs` files of the cgroups v1 controllers where Docker keeps `pid` and applies
    the machine's device rules and limits (`LIMITING_CONTROLLERS`), where the host has those
    hierarchies: herd's command agent joins them too, so that commands are held to the rules and
    limits the container's own processes are."""
    found = []
    with open(f"/proc/{pid}/cgroup") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if LIMITING_CONTROLLERS & set(controllers.split(",")):
                found.append(f"/sys/fs/cgroup/{controllers}{path}/cgroup.procs")
    return tuple(found)


def _check_id_map(plan: LaunchPlan, pid: int, shift: int) -> None:
    """Fail the boot unless the container's root is host id `shift`, as herd read from the
    engine's configuration and prepared the machine's files for (the engine may have been
    restarted with other settings since)."""
    with open(f"/proc/{pid}/uid_map") as uid_map:
        inside, outside, count = (int(field) for field in uid_map.readline().split())
    remapped = (inside, count) == (0, COUNT) and outside > 0
    if (outside if remapped else 0) != shift:
        raise MachineError(
            f"machine {plan.machine.name}: the Docker engine made its root host id "
            f"{outside if remapped else 0}, where herd expected {shift} from the engine's "
            "configuration (was dockerd restarted with another --userns-remap?): run herd again"
        )


def _join(pid: int, cgroup: Cgroup) -> None:
    for procs in cgroup.procs_files:
        with open(procs, "w") as handle:
            handle.write(str(pid))


def start(plan: LaunchPlan) -> Container:
    """Boot the machine of `plan` and return once its systemd reached herd.target."""
    if (problem := engine.remote_problem()) is not None:
        raise MachineError(f"machine {plan.machine.name} cannot start: {problem}")
    # The agent's cgroup is inside the container's own, as on nspawn: the machine's systemd moves
    # a command's processes into the scopes it makes (a login session that `su` opens).
    payload = Cgroup(f"{plan.cgroup.relative}/payload")
    agent_cgroup = Cgroup(f"{payload.relative}/herd-agent")
    payload.create()
    agent_cgroup.create()
    environment = hostimage.apply_grant_environment(plan.root, plan.grants)
    shift = engine.remapped_root() or 0
    mounts = rootfs.Mounts()
    host: _HostSide | None = None
    console: Console | None = None
    channel: Channel | None = None
    container_id: str | None = None
    pidfd = -1
    try:
        unified = _unified(payload, plan.machine.name)
        lowers = _image_layers(plan, shift)
        hostimage.give_to_machine(plan.root, shift)
        payload.delegate(shift)
        agent_cgroup.delegate(shift)
        rootfs.mount_overlays(plan, mounts, lowers)
        if shift and lowers is None:
            rootfs.mount_shared(plan, mounts, shift)
        host = _HostSide(plan, shift)
        console = Console(plan.log_dir / "console.log", plan.machine.name, owner=shift)
        channel = spawn_agent(plan.machine.name)
        container = _create(plan, host, console, mounts, unified, shift=shift)
        container_id = container.id
        pid = int(container.attrs["State"]["Pid"])
        pidfd = _pidfd(plan, pid, console.log)
        _check_id_map(plan, pid, shift)
        _join(pid, payload)
        _plug(pid, plan.attachments, loopback=True)
        host.gate.open()
        _wait_until_ready(plan, host.notify, console.log, pidfd)
        cgroup_procs = (*agent_cgroup.procs_files, *_docker_cgroups_of(pid))
        channel.enter(pid, cgroup_procs, environment, seccomp.filters_of(pid))
    except BaseException:
        if channel is not None:
            channel.close()
        if container_id is not None:
            _remove(container_id)
        if console is not None:
            console.close()
        if pidfd >= 0:
            os.close(pidfd)
        rootfs.unmount(mounts.points())
        plan.cgroup.kill()
        plan.cgroup.remove()
        raise
    finally:
        if host is not None:
            host.close()
    return Container(
        backend=plan.backend,
        name=plan.machine.name,
        access=f"nsenter --target {pid} --all /bin/sh -l",
        plan=plan,
        container_id=container_id,
        pid=pid,
        pidfd=pidfd,
        channel=channel,
        console=console,
        mounts=mounts.points(),
    )
