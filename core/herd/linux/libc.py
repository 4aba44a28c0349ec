"""The C library, loaded once, for the system calls Python's `os` lacks (on 3.11: mount, umount2,
unshare, setns, ptrace, and `syscall` for those libc has no wrapper for), with the constants herd
passes them and `check`, which turns a failed call's -1 and errno into an `OSError`.

Standard library only: the link helper (`herd.linux.linkd`), which runs as a script, imports it too.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# unshare(2), setns(2)
CLONE_NEWNET = 0x40000000
# mount(2)
MS_NOSUID = 0x2
# umount2(2)
MNT_DETACH = 0x2

libc = ctypes.CDLL(None, use_errno=True)
# ptrace returns a long (a word it read, or a count), and its address and data are pointer-sized.
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


def check(result: int, what: str = "") -> int:
    """`result` of a C library call that returns a negative number and sets errno when it fails:
    returned as it is, or raised as `OSError(errno, "<what>: <reason>")` (the reason alone
    without `what`)."""
    if result < 0:
        code = ctypes.get_errno()
        reason = os.strerror(code)
        raise OSError(code, f"{what}: {reason}" if what else reason)
    return result


def mount(
    source: str, target: str | Path, fstype: str | None = None, flags: int = 0, options: str | None = None
) -> None:
    """mount(2). Raises `OSError` ("mount <source> on <target>: <reason>") when it fails."""
    check(
        libc.mount(
            source.encode(),
            os.fsencode(target),
            None if fstype is None else fstype.encode(),
            flags,
            None if options is None else options.encode(),
        ),
        f"mount {source} on {target}",
    )


def unmount(target: str | Path) -> bool:
    """Detach the mount at `target` lazily (MNT_DETACH: what still uses it keeps it until it lets
    go, so this never fails for being busy). Whether there was a mount to detach."""
    return bool(libc.umount2(os.fsencode(target), MNT_DETACH) == 0)
