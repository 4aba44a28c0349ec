"""The system-call filters of a running process, read so that herd's command agent can take them on.

An agent that joins a machine's namespaces and cgroups from outside does not inherit what the
machine's processes carry from their ancestors, the seccomp filters above all: a command it ran
could make calls that every process of the machine is refused (`open_by_handle_at`, mounting, module
loading…). The kernel hands a tracer the classic BPF program of each filter of a process it traces
(`PTRACE_SECCOMP_GET_FILTER`); herd traces the machine's init for the moment it takes to read them,
and the agent installs them in the order the init got them, before it runs anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading

from herd.errors import HerdError
from herd.linux.libc import check, libc

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
WALL = 0x40000000  # waitpid's __WALL
INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
STOP_TIMEOUT = 10.0  # seconds a machine's init gets to stop for its filters to be read


def _ptrace(request: int, pid: int, address: int | None = None, data: object = None) -> int:
    return check(libc.ptrace(request, pid, address, data))


def _filter(pid: int, index: int) -> bytes | None:
    """The program of filter `index` (0: the latest installed), or None past the last one."""
    try:
        count = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index)
    except OSError as error:
        if error.errno == errno.ENOENT or (error.errno == errno.EINVAL and index == 0):
            return None  # past the last filter, or a process without any
        raise
    program = ctypes.create_string_buffer(count * INSTRUCTION_SIZE)
    _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, program)
    return program.raw


def filters_of(pid: int, timeout: float = STOP_TIMEOUT) -> list[bytes]:
    """The seccomp filters of process `pid`, each a classic BPF program, in the order they were
    installed (the order to install them in). The process is stopped for the moment it takes.

    Raises `HerdError` when the kernel does not hand them out (it needs CONFIG_CHECKPOINT_RESTORE),
    or when the process does not stop within `timeout` seconds (a process in an uninterruptible
    sleep stops only when it leaves it). The reading runs in a thread of its own, the tracer, which
    lets the process go whenever it stops, so that the caller is free to give up and end it."""
    outcome: list[list[bytes] | HerdError] = []
    reader = threading.Thread(
        target=lambda: outcome.append(_read_filters(pid)), name=f"herd-seccomp-{pid}", daemon=True
    )
    reader.start()
    reader.join(timeout)
    if not outcome:
        raise HerdError(
            f"process {pid} did not stop within {timeout:g} s for herd to read its system-call filters"
        )
    if isinstance(outcome[0], HerdError):
        raise outcome[0]
    return outcome[0]


def _read_filters(pid: int) -> list[bytes] | HerdError:
    try:
        _ptrace(PTRACE_SEIZE, pid)
    except OSError as error:
        return HerdError(f"cannot trace process {pid} to read its system-call filters: {error.strerror}")
    try:
        _ptrace(PTRACE_INTERRUPT, pid)
        os.waitpid(pid, WALL)
        found: list[bytes] = []
        while (program := _filter(pid, len(found))) is not None:
            found.append(program)
    except OSError as error:
        return HerdError(f"cannot read the system-call filters of process {pid}: {error.strerror}")
    finally:
        with contextlib.suppress(OSError):  # it ended meanwhile
            _ptrace(PTRACE_DETACH, pid, 0, 0)
    return found[::-1]
