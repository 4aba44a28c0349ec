"""The kernel a VM boots, and the small initramfs herd makes for it.

The kernel is the host's newest /boot/vmlinuz-* (Debian's linux-image-amd64 provides one) or the
one a machine names. Its modules come from /lib/modules/<version>, which the VM also sees later
through the shared /usr. The initramfs holds a static busybox, the modules needed to reach the root
file system (virtio, virtio-fs) and the NICs, and an init that loads them, mounts the root share,
applies the machine's limits that the guest's kernel holds and hands over to systemd (see `INIT`).
It is built once per kernel and cached; the machine's values come on the kernel command line.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from herd.plugin import HerdError, MachineSpec

BOOT = Path("/boot")
MODULES = Path("/lib/modules")
BUSYBOX = Path("/bin/busybox")
CACHE = Path("/var/cache/herd/initramfs")
ROOT_TAG = "herdroot"
QBOOT = Path("/usr/share/qemu/qboot.rom")  # a firmware that boots a kernel in milliseconds
KERNEL_ARGUMENTS = (
    "console=ttyS0 panic=-1 quiet mitigations=off i8042.noaux i8042.nopnp tsc=reliable no_timer_check "
    "rcupdate.rcu_expedited=1 random.trust_cpu=on"
)
# What the VM needs before its root is mounted; modules.dep gives what these need in turn.
NEEDED_MODULES = (
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/char/virtio_console.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/fs/fuse/virtiofs.ko",
)
LIMITS_CGROUP = "herd"  # the cgroup of the guest's user space, under the guest's root cgroup
PIDS_ARGUMENT = "herd.pids"  # on the kernel command line: the machine's `pids`
# On the kernel command line where the machine's image has an init of its own (a NixOS system's);
# else the initramfs hands over to the root's systemd.
INIT_ARGUMENT = "herd.init"
SYSTEMD = "/lib/systemd/systemd"
# The initramfs's init. It says on the console where it got to (with `quiet`, a good boot's
# console is otherwise empty until systemd's own messages), and a step that fails powers the VM off
# at once: QEMU exits, and the boot fails with these lines instead of waiting out its timeout.
#
# It also applies the machine's limits that the guest's kernel holds. `pids`: processes and threads
# are the guest kernel's, so the bound is a cgroup of that kernel, `/herd`, with `pids.max` from the
# kernel command line; init moves itself there, so systemd and every process it starts (the agent,
# the test's commands, `su` sessions) are below it, and systemd takes `/herd` as its root, as in a
# container. The guest's kernel threads stay outside: they are not the machine's processes, and a
# fork bomb that starved them (as `kernel.threads-max`, which counts them, would) could hang the
# guest's kernel. Every controller is enabled for `/herd`, so the units' own limits hold as on a
# host. `memory` is the guest's RAM: the guest always overcommits it (vm.overcommit_memory=1), as a
# container's processes get memory past their limit from their host's kernel, so a process that
# goes past it is killed by the guest's OOM killer (status 137), as in a container, rather than
# refused one allocation larger than the whole VM.
INIT = f"""#!/bin/busybox sh
fail() {{ echo "herd initramfs: $1"; /bin/busybox poweroff -f; }}
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for module in $(/bin/busybox cat /modules); do
    /bin/busybox insmod "/lib/modules/$module" || echo "herd initramfs: cannot load $module"
done
echo "herd initramfs: modules loaded"
/bin/busybox mount -t virtiofs {ROOT_TAG} /newroot || fail "cannot mount the root share"
echo "herd initramfs: root mounted"
for argument in $(/bin/busybox cat /proc/cmdline); do
    case "$argument" in
        {PIDS_ARGUMENT}=*) pids="${{argument#*=}}" ;;
        {INIT_ARGUMENT}=*) init="${{argument#*=}}" ;;
    esac
done
cgroups=/sys/fs/cgroup
limited=$cgroups/{LIMITS_CGROUP}
{{ /bin/busybox mount -t cgroup2 cgroup2 $cgroups &&
    /bin/busybox sed -E 's/[^ ]+/+&/g' $cgroups/cgroup.controllers > $cgroups/cgroup.subtree_control &&
    /bin/busybox mkdir $limited && echo "${{pids:-max}}" > $limited/pids.max &&
    echo $$ > $limited/cgroup.procs && /bin/busybox umount $cgroups &&
    echo 1 > /proc/sys/vm/overcommit_memory; }} || fail "cannot apply the machine's limits"
/bin/busybox umount /proc /sys /dev
echo "herd initramfs: starting systemd"
exec /bin/busybox switch_root /newroot "${{init:-{SYSTEMD}}}" "$@"
"""


def command_line(machine: MachineSpec, init: str | None = None) -> str:
    """The kernel command line of `machine`'s VM: herd's arguments, the limits its init applies,
    and the init to hand over to where its image has one of its own."""
    line = f"{KERNEL_ARGUMENTS} {PIDS_ARGUMENT}={machine.pids}"
    return line if init is None else f"{line} {INIT_ARGUMENT}={init}"


@dataclass(frozen=True)
class Kernel:
    image: Path  # what QEMU boots: the uncompressed kernel when it can, else the original
    version: str
    initramfs: Path


def _version_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def find_kernel(configured: str | None = None) -> tuple[Path, str]:
    """The kernel image to boot and its version (from its file name: vmlinuz-<version>)."""
    if configured is not None:
        image = Path(configured)
        if not image.is_file():
            raise HerdError(f"kernel {image} does not exist")
    else:
        images = sorted(BOOT.glob("vmlinuz-*"), key=_version_key)
        if not images:
            raise HerdError(
                "no kernel to boot VMs with: /boot has no vmlinuz-*; install one "
                "(apt-get install linux-image-amd64) or name one with the machine option 'kernel'"
            )
        image = images[-1]
    version = image.name.removeprefix("vmlinuz-")
    if not (MODULES / version / "modules.dep").is_file():
        raise HerdError(f"kernel {image} has no modules in {MODULES / version} (its package installs them)")
    return image, version


def modules_in_order(version: str) -> list[str]:
    """NEEDED_MODULES and what they depend on, dependencies first (paths under the version's dir)."""
    dependencies: dict[str, list[str]] = {}
    with open(MODULES / version / "modules.dep") as listing:
        for line in listing:
            module, _, needs = line.partition(":")
            dependencies[module.strip()] = needs.split()
    ordered: list[str] = []

    def visit(module: str) -> None:
        if module in ordered:
            return
        if module not in dependencies:
            built_in = (MODULES / version / "modules.builtin").read_text().split()
            if module in built_in:
                return
            raise HerdError(f"kernel {version} lacks the module {module}, which VMs need (virtio, virtio-fs)")
        for needed in reversed(dependencies[module]):
            visit(needed)
        ordered.append(module)

    for module in NEEDED_MODULES:
        visit(module)
    return ordered


def _cpio_entry(name: str, mode: int, data: bytes = b"", inode: int = 1) -> bytes:
    """One entry of a "newc" cpio archive, the format the kernel unpacks as its initramfs."""
    encoded = name.encode() + b"\0"
    header = "070701" + "".join(
        f"{value:08x}" for value in (inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    )
    entry = header.encode() + encoded
    entry += b"\0" * (-len(entry) % 4) + data
    return entry + b"\0" * (-len(entry) % 4)


def _build(version: str, target: Path) -> None:
    if not BUSYBOX.is_file():
        raise HerdError("VMs need a static busybox for their initramfs: apt-get install busybox-static")
    modules = modules_in_order(version)
    entries: list[tuple[str, int, bytes]] = []
    for directory in ("bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"):
        entries.append((directory, stat.S_IFDIR | 0o755, b""))
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes()))
    entries.append(("init", stat.S_IFREG | 0o755, INIT.encode()))
    entries.append(
        ("modules", stat.S_IFREG | 0o644, "\n".join(Path(m).name for m in modules).encode() + b"\n")
    )
    for module in modules:
        entries.append(
            (
                f"lib/modules/{Path(module).name}",
                stat.S_IFREG | 0o644,
                (MODULES / version / module).read_bytes(),
            )
        )
    archive = b"".join(
        _cpio_entry(name, mode, data, inode) for inode, (name, mode, data) in enumerate(entries, 1)
    )
    archive += _cpio_entry("TRAILER!!!", 0, b"", 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as scratch:
        scratch.write(archive)
    os.replace(scratch.name, target)


def _uncompressed(image: Path, version: str, target: Path) -> Path:
    """The kernel without its compression, which QEMU boots straight through its PVH entry point:
    under TCG, decompressing an 8 MB kernel costs the guest about three seconds at every boot."""
    if target.exists():
        return target
    config = BOOT / f"config-{version}"
    if not config.exists() or "CONFIG_PVH=y" not in config.read_text():
        return image
    data = image.read_bytes()
    for magic, decompress in ((b"\xfd7zXZ\x00", lzma.decompress), (b"\x1f\x8b\x08", gzip.decompress)):
        offset = data.find(magic)
        if offset < 0:
            continue
        try:
            unpacked = (
                lzma.LZMADecompressor().decompress(data[offset:])
                if magic[0] == 0xFD
                else decompress(data[offset:])
            )
        except (lzma.LZMAError, OSError, EOFError):
            continue
        if unpacked[:4] == b"\x7fELF":
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as scratch:
                scratch.write(unpacked)
            os.replace(scratch.name, target)
            return target
    return image


def prepare_kernel(configured: str | None = None) -> Kernel:
    """The kernel to boot and its initramfs, made now if the cache has none for this kernel."""
    image, version = find_kernel(configured)
    source = f"{image}:{image.stat().st_mtime_ns}:{INIT}:{NEEDED_MODULES}"
    fingerprint = hashlib.sha256(source.encode()).hexdigest()[:16]
    initramfs = CACHE / f"{version}-{fingerprint}.cpio"
    if not initramfs.exists():
        _build(version, initramfs)
    return Kernel(
        _uncompressed(image, version, CACHE / f"vmlinux-{version}-{fingerprint}"), version, initramfs
    )
