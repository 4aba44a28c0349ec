"""The host ids that the users of a confined machine are.

A backend that confines its machines in user namespaces maps a machine's ids 0…65535 to host ids
`BASE`…`BASE + 65535`: root in a machine is host id `BASE`, which owns nothing on the host. Every
machine of every run shares the one range, so the host image's files can be prepared once for it
(see `herd.host.hostsnapshot`). The range lies in the ids that systemd's documentation leaves unused
(above its containers' 524288…1879048191 and below its "foreign" range at 2147352576), so it meets
neither a container that systemd-nspawn picks a range for nor a regular user.
"""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from herd.hooks.types import DeviceGrant, DeviceNode, granted_nodes
from herd.linux.libc import check, libc

BASE = 0x7E000000  # 2113929216
COUNT = 65536
# What an id the range cannot hold becomes: the machine's `nobody`.
OVERFLOW = 65534


def shifted(host_id: int, shift: int) -> int:
    """`host_id` as a machine whose root is host id `shift` owns it (`shift` 0: unchanged)."""
    if shift == 0:
        return host_id
    return shift + (host_id if host_id < COUNT else OVERFLOW)


def shift_owners(top: Path, shift: int) -> None:
    """Hand `top` and everything below it that host ids 0…65535 own to the machine's users, as a
    machine whose root is host id `shift` sees them (SUID and SGID bits kept)."""
    if shift == 0:
        return
    for path, info in ((str(top), os.lstat(top)), *entries_below(str(top))):
        if info.st_uid < COUNT:
            group = shifted(info.st_gid, shift) if info.st_gid < COUNT else info.st_gid
            os.chown(path, shifted(info.st_uid, shift), group, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode))  # chown cleared the set-id bits


def entries_below(directory: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below `directory` (parents before children), never through a link. An entry
    that vanishes meanwhile (the host's package manager at work) is passed over."""
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield entry.path, info
        if stat.S_ISDIR(info.st_mode):
            yield from entries_below(entry.path)


def twin_nodes(grants: Iterable[DeviceGrant], directory: Path, shift: int) -> list[tuple[DeviceNode, Path]]:
    """Each device node of `grants` (once, though grants often share control nodes) with its twin
    in `directory`: the same device numbers and mode, owned as a machine whose root is host id
    `shift` sees the host node's owner. A confined machine's root is not host root, so it could
    not open the host's nodes themselves (`/dev/kvm` is root:kvm 0660); devtmpfs takes no id-mapped
    mounts. Twins are made once per machine."""
    twins = []
    for index, node in enumerate(granted_nodes(grants)):
        twin = directory / str(index)
        if not twin.exists():
            info = os.stat(node.path)
            directory.mkdir(exist_ok=True)
            os.mknod(twin, stat.S_IFMT(info.st_mode) | 0o600, info.st_rdev)
            os.chown(twin, shifted(info.st_uid, shift), shifted(info.st_gid, shift))
            os.chmod(twin, stat.S_IMODE(info.st_mode))
        twins.append((node, twin))
    return twins


# System calls of the new mount API, by number (the same on every architecture).
_OPEN_TREE, _MOVE_MOUNT, _MOUNT_SETATTR = 428, 429, 442
_OPEN_TREE_CLONE = 0x1
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_IDMAP = 0x100000

_namespaces: dict[int, int] = {}
_namespaces_lock = threading.Lock()


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def user_namespace(shift: int) -> int:
    """A descriptor of a user namespace whose ids 0…65535 are host ids `shift`…, the mapping an
    id-mapped mount takes. Made once per process and shift: by a short-lived `unshare` whose maps
    herd writes, as the kernel allows the parent namespace's root to."""
    with _namespaces_lock:
        if shift in _namespaces:
            return _namespaces[shift]
        ours = os.stat("/proc/self/ns/user").st_ino
        # in a process group of its own: the terminal's Ctrl-C is herd's, not its helpers'
        holder = subprocess.Popen(["unshare", "--user", "cat"], stdin=subprocess.PIPE, process_group=0)
        try:
            deadline = time.monotonic() + 5.0
            while os.stat(f"/proc/{holder.pid}/ns/user").st_ino == ours:
                if time.monotonic() > deadline or holder.poll() is not None:
                    raise OSError(f"unshare --user did not make a user namespace (status {holder.poll()})")
                time.sleep(0.0005)
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{holder.pid}/{name}", "w") as mapping:
                    mapping.write(f"0 {shift} {COUNT}\n")
            descriptor = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait()
        _namespaces[shift] = descriptor
        return descriptor


def mount_idmapped(source: str, target: Path, shift: int) -> None:
    """Mount a read-only, id-mapped copy of the tree at `source` (its submounts included) on
    `target`: host root's files are the root's of a machine whose root is host id `shift`, SUID
    bits and file capabilities included. A bind of it (a container engine's) keeps the mapping."""
    attributes = _MountAttr(_MOUNT_ATTR_IDMAP | _MOUNT_ATTR_RDONLY, 0, 0, user_namespace(shift))
    tree = check(
        libc.syscall(_OPEN_TREE, _AT_FDCWD, source.encode(), _OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_RECURSIVE),
        f"cannot clone the mount tree of {source}",
    )
    try:
        check(
            libc.syscall(
                _MOUNT_SETATTR,
                tree,
                b"",
                _AT_EMPTY_PATH | _AT_RECURSIVE,
                ctypes.byref(attributes),
                ctypes.sizeof(attributes),
            ),
            f"cannot id-map the mounts of {source}",
        )
        check(
            libc.syscall(_MOVE_MOUNT, tree, b"", _AT_FDCWD, str(target).encode(), _MOVE_MOUNT_F_EMPTY_PATH),
            f"cannot mount the id-mapped {source} on {target}",
        )
    finally:
        os.close(tree)
