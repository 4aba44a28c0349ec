"""herd's QEMU backend: machines as virtual machines booting the same image as containers.

This module is the plugin (entry points `qemu` and `qemu-libvirt` in `herd.backends`); `herd_qemu.vm`
runs QEMU, started by herd (`direct`, backend `qemu`) or by libvirt (`libvirt_engine`, backend
`qemu-libvirt`, which imports libvirt-python only when used).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from herd.plugin import (
    BackendInfo,
    Capability,
    ExecResult,
    HerdError,
    HostCheck,
    Kind,
    LaunchPlan,
    MachineSpec,
    StopMode,
    hookimpl,
)
from herd_qemu import confine, connection, direct, libvirt_engine, vm
from herd_qemu.kernel import BUSYBOX, find_kernel

NAME = "qemu"
# MiB: what the host image boots in with room for commands (in 96 MiB it boots with 17 MiB left for
# them; in 80 the guest kernel panics)
MINIMUM_MEMORY = 128
MAXIMUM_VCPUS = 255  # what QEMU's `pc` machine takes
OPTIONS = {
    "kernel": "the kernel image to boot (default: the newest /boot/vmlinuz-*)",
    "accelerator": "kvm, tcg or auto (default auto: KVM when a VM starts on it here, else TCG)",
}
ACCELERATORS = ("auto", "kvm", "tcg")
LIBVIRT_NAME = "qemu-libvirt"
LIBVIRT_OPTIONS = {
    **OPTIONS,
    "uri": f"the libvirt URI of the hypervisor (default {connection.DEFAULT_URI}); the kernel, initramfs "
    "and machine root herd prepares must exist at the same paths there",
}


def validate_options(
    options: Mapping[str, Any], known: Mapping[str, str] = OPTIONS, backend: str = NAME
) -> list[str]:
    problems = []
    for name in options:
        if name not in known:
            listing = ", ".join(f"{key} ({text})" for key, text in known.items())
            problems.append(f"unknown option {name!r}; {backend} options: {listing}")
    accelerator = options.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        problems.append(f"accelerator must be one of {', '.join(ACCELERATORS)}, got {accelerator!r}")
    kernel = options.get("kernel")
    if kernel is not None and (not isinstance(kernel, str) or not Path(kernel).is_file()):
        problems.append(f"kernel {kernel!r} is not a file")
    return problems


def validate_machine(machine: MachineSpec) -> list[tuple[str, str]]:
    """A VM's memory and vCPUs: at least what the host image boots in, at most what QEMU gives."""
    problems = []
    if machine.memory < MINIMUM_MEMORY:
        problems.append(
            ("memory", f"a VM needs at least {MINIMUM_MEMORY} MiB (what the host image boots in), "
             f"got {machine.memory} MiB")
        )  # fmt: skip
    if vm.vcpus(machine) > MAXIMUM_VCPUS:
        problems.append(("cpus", f"a VM has at most {MAXIMUM_VCPUS} vCPUs, got {machine.cpus:g}"))
    return problems


def validate_libvirt_options(options: Mapping[str, Any]) -> list[str]:
    problems = validate_options(options, LIBVIRT_OPTIONS, LIBVIRT_NAME)
    problem = connection.uri_problem(options.get("uri", connection.DEFAULT_URI))
    return [*problems, problem] if problem else problems


def host_checks() -> Iterator[HostCheck]:
    qemu = shutil.which(vm.QEMU)
    yield HostCheck(
        "qemu", qemu is not None, qemu or "not found", None if qemu else "apt-get install qemu-system-x86"
    )
    try:
        image, version = find_kernel()
        yield HostCheck("kernel", True, f"{image} ({version})")
    except HerdError as error:
        yield HostCheck("kernel", False, str(error), "apt-get install linux-image-amd64")
    virtiofsd = Path(confine.VIRTIOFSD).is_file()
    yield HostCheck(
        "virtiofsd",
        virtiofsd,
        confine.VIRTIOFSD if virtiofsd else f"{confine.VIRTIOFSD} not found",
        None if virtiofsd else "apt-get install qemu-system-x86 (its qemu-system-common has it)",
    )
    yield HostCheck(
        "busybox",
        BUSYBOX.is_file(),
        str(BUSYBOX),
        None if BUSYBOX.is_file() else "apt-get install busybox-static",
    )
    if qemu:
        accel, why = vm.accelerator()
        yield HostCheck("acceleration", True, f"{accel}: {why}")


def libvirt_host_checks() -> Iterator[HostCheck]:
    yield from host_checks()
    if not connection.installed():
        yield HostCheck("libvirt-python", False, "not installed", connection.INSTALL)
        return
    yield HostCheck("libvirt-python", True, "installed")
    try:
        yield HostCheck("libvirtd", True, connection.describe(connection.DEFAULT_URI))
    except HerdError as error:
        yield HostCheck("libvirtd", False, str(error), connection.START_LIBVIRTD)


# The image kinds its VMs boot: the host's OS and those of herd-images (a NixOS system's init
# takes over from the initramfs, `kernel.INIT_ARGUMENT`).
IMAGES = frozenset({"host", "debian", "oci", "docker", "nixos"})
CAPABILITIES = frozenset(
    {
        Capability.SYSTEMD,
        Capability.SUID,
        Capability.REBOOT,
        Capability.CONSOLE,
        Capability.KEYBOARD,
        Capability.SCREENSHOT,
        Capability.MONITOR,
        Capability.KERNEL,
        Capability.PCI,
        Capability.SHELL,
        # memory and vCPUs are QEMU's, pids the guest's (`kernel.INIT`), disk the core's tmpfs
        Capability.LIMITS,
        # the guest's processes are its own kernel's; what it writes to the host, see `confine`
        Capability.CONFINED,
    }
)


@hookimpl
def herd_register_backends(register: Any) -> None:
    register(
        BackendInfo(
            name=NAME,
            kind=Kind.VM,
            capabilities=CAPABILITIES,
            description="QEMU virtual machines on the host image (KVM when it works, else TCG)",
            priority=50,
            host_checks=host_checks,
            validate_options=validate_options,
            validate_machine=validate_machine,
            images=IMAGES,
        )
    )
    register(
        BackendInfo(
            name=LIBVIRT_NAME,
            kind=Kind.VM,
            capabilities=CAPABILITIES,
            description="the same QEMU VMs, run as transient libvirt domains (local or remote libvirtd)",
            host_checks=libvirt_host_checks,
            validate_options=validate_libvirt_options,
            validate_machine=validate_machine,
            images=IMAGES,
        )
    )


@hookimpl
def herd_machine_start(plan: LaunchPlan) -> vm.VirtualMachine:
    return libvirt_engine.start(plan) if plan.backend == LIBVIRT_NAME else direct.start(plan)


@hookimpl
def herd_machine_execute(
    handle: vm.VirtualMachine, command: str, timeout: float | None, stdin: bytes
) -> ExecResult:
    return handle.execute(command, timeout, stdin)


@hookimpl
def herd_machine_stop(handle: vm.VirtualMachine, mode: StopMode, timeout: float) -> str:
    return handle.stop(mode, timeout)


@hookimpl
def herd_machine_reboot(handle: vm.VirtualMachine, timeout: float) -> str:
    return handle.reboot(timeout)


@hookimpl
def herd_machine_console(handle: vm.VirtualMachine) -> str:
    return handle.console.text()


@hookimpl
def herd_machine_send_chars(handle: vm.VirtualMachine, chars: str) -> bool:
    handle.console.type(chars)
    return True


@hookimpl
def herd_machine_send_keys(handle: vm.VirtualMachine, keys: list[str]) -> bool:
    handle.monitor.command("send-key", keys=[{"type": "qcode", "data": key} for key in keys])
    return True


@hookimpl
def herd_machine_screenshot(handle: vm.VirtualMachine, path: Path) -> bool:
    handle.monitor.command("screendump", filename=str(path.absolute()), format="png")
    return True


@hookimpl
def herd_machine_monitor_command(handle: vm.VirtualMachine, command: str) -> str:
    return str(handle.monitor.command("human-monitor-command", **{"command-line": command}))


@hookimpl
def herd_machine_qmp_events(handle: vm.VirtualMachine, timeout: float) -> list[dict[str, Any]]:
    return handle.monitor.take_events(timeout)


@hookimpl
def herd_run_leftovers(run_id: str) -> list[str]:
    return connection.leftovers(run_id)


@hookimpl
def herd_reap(run_id: str) -> list[str]:
    return connection.reap(run_id)
