"""The direct engine: herd runs QEMU itself, in the machine's cgroup.

The machine's root is assembled inside QEMU's own mount namespace, where virtiofsd serves it too:
the mounts vanish with QEMU, whatever happens to herd. The console, QEMU's monitor and the agent's
port are socket pairs handed to QEMU at start: nothing to connect to, nothing left on disk. The
file server's socket is one herd listens on before QEMU starts, so neither waits for the other.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from herd.plugin import Channel, LaunchPlan, MachineError, wait_for_exit
from herd_qemu import confine, guest
from herd_qemu.hostroot import overlay_options
from herd_qemu.kernel import QBOOT, ROOT_TAG, Kernel, command_line
from herd_qemu.qmp import QMP
from herd_qemu.vm import (
    CPU_MODELS,
    QEMU,
    Console,
    VirtualMachine,
    log_file_tail,
    prepare,
    unprepare,
    vcpus,
)

# The guest is the only writer of its root while it runs, so it may cache everything; xattrs carry
# file capabilities (ping's cap_net_raw), which QEMU's 9p server drops; no device nodes (`confine`).
VIRTIOFSD_OPTIONS = f"xattr,cache=always,announce_submounts,sandbox=chroot,{confine.FILE_SERVER_CAPABILITIES}"


@dataclass
class QemuProcess:
    """A Hypervisor: the QEMU process herd started, and the cgroup it runs in."""

    process: subprocess.Popen[bytes]
    plan: LaunchPlan

    def exit_status(self) -> str | None:
        status = self.process.poll()
        return None if status is None else f"QEMU exited with status {status}"

    def wait_exit(self, timeout: float) -> bool:
        return wait_for_exit(self.process, timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def release(self) -> None:
        self.plan.cgroup.kill()
        self.plan.cgroup.remove()

    def log_tail(self, count: int) -> str:
        return log_file_tail(self.plan.log_dir / "qemu.log", count)  # QEMU's and virtiofsd's


def _mount_script(plan: LaunchPlan, root_listener: int) -> str:
    """Shell that assembles the machine's root inside QEMU's mount namespace, starts the file
    server that shares it with the guest, then runs QEMU."""
    root = plan.root.directory
    steps = []
    for host, guest_path in plan.root.read_only_binds:
        target = shlex.quote(f"{root}{guest_path}")
        steps.append(f"mount --bind {shlex.quote(host)} {target} && mount -o remount,bind,ro {target}")
    for overlay in plan.root.overlays:
        options = overlay_options(plan, overlay)
        steps.append(
            f"mount -t overlay herd -o {shlex.quote(options)} {shlex.quote(f'{root}{overlay.target}')}"
        )
    for host, guest_path in confine.served_binds(plan):
        target = shlex.quote(f"{root}{guest_path}")
        steps.append(f"mkdir -p {target} && mount --bind {shlex.quote(host)} {target}")
    source = shlex.quote(str(root))
    serve = f"{{ {confine.VIRTIOFSD} --fd={root_listener} -o source={source} -o {VIRTIOFSD_OPTIONS} & }}"
    return " && ".join([*steps, serve, 'exec "$@"'])


def _qemu_argv(
    plan: LaunchPlan, kernel: Kernel, accel: str, fds: dict[str, int], root_socket: Path
) -> list[str]:
    memory = plan.machine.memory
    argv = [
        QEMU, "-name", plan.machine.name, "-accel", accel, "-cpu", CPU_MODELS[accel],
        "-m", str(memory), "-smp", str(vcpus(plan.machine)),
        "-nodefaults", "-no-user-config", "-display", "none", "-device", "VGA",
        "-kernel", str(kernel.image), "-initrd", str(kernel.initramfs),
        "-append", command_line(plan.machine, plan.root.init),
        "-object", f"memory-backend-memfd,id=memory,size={memory}M,share=on",
        "-machine", "memory-backend=memory",
        "-chardev", f"socket,id=root,path={root_socket}",
        "-device", f"vhost-user-fs-pci,chardev=root,tag={ROOT_TAG}",
        "-chardev", f"socket,id=console,fd={fds['console']}", "-serial", "chardev:console",
        "-chardev", f"socket,id=monitor,fd={fds['monitor']}", "-mon", "chardev=monitor,mode=control",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=agent,fd={fds['agent']}",
        "-device", f"virtserialport,chardev=agent,name={guest.AGENT_PORT}",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    if QBOOT.exists():
        argv += ["-bios", str(QBOOT)]
    for number, attachment in enumerate(plan.attachments):
        argv += [
            "-netdev", f"tap,id=net{number},ifname={attachment.host_link},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=net{number},mac={attachment.mac}",
        ]  # fmt: skip
    for grant in plan.grants:
        for function in grant.pci_functions:
            argv += ["-device", f"vfio-pci,host={function.removeprefix('pci:')}"]
    return argv


def start(plan: LaunchPlan) -> VirtualMachine:
    """Boot the VM of `plan` on a QEMU of herd's own; return once its systemd has finished booting."""
    kernel, accel = prepare(plan)
    pairs = {
        name: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for name in ("console", "monitor", "agent")
    }
    fds = {name: theirs.fileno() for name, (_, theirs) in pairs.items()}
    root_socket = plan.state_dir / "root.sock"
    root_socket.unlink(missing_ok=True)  # the last boot's, when the machine starts again
    root_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    root_listener.bind(str(root_socket))
    root_listener.listen(1)
    argv = _qemu_argv(plan, kernel, accel, fds, root_socket)
    wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    wrapped += [_mount_script(plan, root_listener.fileno()), "herd-vm", *argv]
    with open(plan.log_dir / "qemu.log", "ab") as qemu_log:
        process = subprocess.Popen(
            plan.cgroup.command_in(wrapped),
            stdin=subprocess.DEVNULL,
            stdout=qemu_log,
            stderr=subprocess.STDOUT,
            pass_fds=(*fds.values(), root_listener.fileno()),
            start_new_session=True,
        )
    for _, theirs in pairs.values():
        theirs.close()
    root_listener.close()
    hypervisor = QemuProcess(process, plan)
    console = Console(pairs["console"][0], plan.log_dir / "console.log")
    channel = Channel(plan.machine.name, pairs["agent"][0])
    try:
        monitor = QMP(pairs["monitor"][0], plan.machine.name)
    except (MachineError, OSError):
        process.wait()
        console.close()
        channel.close()
        hypervisor.release()
        unprepare(plan)
        qemu_errors = (plan.log_dir / "qemu.log").read_text(errors="replace").strip()
        raise MachineError(
            f"machine {plan.machine.name}: QEMU did not start: {qemu_errors[-2000:]}"
        ) from None
    return VirtualMachine(
        backend=plan.backend,
        name=plan.machine.name,
        access=f"(its console: {plan.log_dir / 'console.log'})",
        plan=plan,
        hypervisor=hypervisor,
        monitor=monitor,
        console=console,
        channel=channel,
        accelerator=accel,
    ).boot()
