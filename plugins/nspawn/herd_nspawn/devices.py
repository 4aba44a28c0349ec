"""A container's device policy: which device nodes its processes may open or create.

systemd-nspawn leaves the policy to the service manager it registers the container with (machined
sets `DevicePolicy=closed` plus a few allowances). herd runs it with `--register=no --keep-unit`,
so without a policy of its own a container could `mknod` any host device and open it. herd
therefore attaches a cgroup device program (`BPF_PROG_TYPE_CGROUP_DEVICE`, what systemd uses on
cgroup v2) to the machine's cgroup in the unified hierarchy before the container starts. It allows
what machined allows and the nodes of the machine's device grants, nothing else. The kernel runs
it for every process below that cgroup, the command agent included, on pure cgroup v2 hosts and on
hybrid ones alike. It is attached with `BPF_F_ALLOW_MULTI`, so the container's own systemd can
still attach programs of its own below it, and it goes away with the cgroup.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from herd.plugin import Cgroup, DeviceNode, MachineError, libc, unified_mounted

# bpf(2) commands, program and attach types, flags (linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280}  # __NR_bpf; both little-endian
DEVICE_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
VERIFIER_LOG_SIZE = 1 << 16
# The verifier gives up with EAGAIN when a signal arrives while it runs (the kernel asks to be
# called again): under load, with herd's threads busy, that happens. libbpf tries 5 times; a
# signal every 2 ms fails about one load in seven, so 10 tries make a failure all but impossible.
BPF_ATTEMPTS = 10

log = logging.getLogger("herd.nspawn")


@dataclass(frozen=True)
class Rule:
    """Allow `access` ("rwm" or part of it) to devices of `kind` with these numbers (None: any)."""

    kind: str
    major: int | None
    minor: int | None
    access: str


# What machined gives a registered nspawn container (DevicePolicy=closed: the API pseudo-devices
# and systemd's inaccessible nodes, 0:0), and nspawn's own allowances: /dev/net/tun, and the
# ptys (char-pts, see `_pty_rules`) without the right to create them.
BASE_RULES = (
    Rule("c", 1, 3, "rwm"),  # /dev/null
    Rule("c", 1, 5, "rwm"),  # /dev/zero
    Rule("c", 1, 7, "rwm"),  # /dev/full
    Rule("c", 1, 8, "rwm"),  # /dev/random
    Rule("c", 1, 9, "rwm"),  # /dev/urandom
    Rule("c", 5, 0, "rwm"),  # /dev/tty
    Rule("c", 5, 2, "rwm"),  # /dev/ptmx
    Rule("c", 0, 0, "rwm"),  # /run/systemd/inaccessible/chr
    Rule("b", 0, 0, "rwm"),  # /run/systemd/inaccessible/blk
    Rule("c", 10, 200, "rwm"),  # /dev/net/tun
)


@cache
def _pty_rules() -> tuple[Rule, ...]:
    """Every major /proc/devices lists as `pts` (the container's console is one), read and write."""
    rules = []
    with open("/proc/devices") as devices:
        for line in devices:
            if line.strip() == "Block devices:":
                break
            fields = line.split()
            if len(fields) == 2 and fields[1] == "pts":
                rules.append(Rule("c", int(fields[0]), None, "rw"))
    return tuple(rules)


def _instruction(code: int, dst: int = 0, src: int = 0, offset: int = 0, immediate: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, offset, immediate)


LOAD_WORD = 0x61  # BPF_LDX | BPF_MEM | BPF_W
AND_32 = 0x54  # BPF_ALU | BPF_AND | BPF_K
SHIFT_RIGHT_32 = 0x74  # BPF_ALU | BPF_RSH | BPF_K
MOVE_REGISTER_32 = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
MOVE_IMMEDIATE = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
JUMP_NOT_EQUAL = 0x55  # BPF_JMP | BPF_JNE | BPF_K
EXIT = 0x95  # BPF_JMP | BPF_EXIT


def program(rules: Iterable[Rule]) -> bytes:
    """The device program: 1 (allow) when a rule matches the access, 0 (deny) otherwise.

    Its context is `struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}`, where
    `access_type` holds the device type in its low 16 bits and the access bits in its high 16.
    """
    code = [
        _instruction(LOAD_WORD, dst=2, src=1, offset=0),
        _instruction(AND_32, dst=2, immediate=0xFFFF),  # r2: the type
        _instruction(LOAD_WORD, dst=3, src=1, offset=0),
        _instruction(SHIFT_RIGHT_32, dst=3, immediate=16),  # r3: the access asked for
        _instruction(LOAD_WORD, dst=4, src=1, offset=4),  # r4: major
        _instruction(LOAD_WORD, dst=5, src=1, offset=8),  # r5: minor
    ]
    for rule in rules:
        # (operation, dst, src, immediate); a failed test jumps past the rest of its rule
        block: list[tuple[int, int, int, int]] = []
        bits = sum(ACCESS_BITS[letter] for letter in set(rule.access))
        if bits != 7:  # r1 = the access asked for that the rule does not allow; it must be none
            block += [(MOVE_REGISTER_32, 1, 3, 0), (AND_32, 1, 0, ~bits), (JUMP_NOT_EQUAL, 1, 0, 0)]
        block.append((JUMP_NOT_EQUAL, 2, 0, DEVICE_TYPES[rule.kind]))
        if rule.major is not None:
            block.append((JUMP_NOT_EQUAL, 4, 0, rule.major))
        if rule.minor is not None:
            block.append((JUMP_NOT_EQUAL, 5, 0, rule.minor))
        block += [(MOVE_IMMEDIATE, 0, 0, 1), (EXIT, 0, 0, 0)]
        for index, (operation, dst, src, immediate) in enumerate(block):
            offset = len(block) - 1 - index if operation == JUMP_NOT_EQUAL else 0
            code.append(_instruction(operation, dst, src, offset, immediate))
    code += [_instruction(MOVE_IMMEDIATE, dst=0, immediate=0), _instruction(EXIT)]
    return b"".join(code)


def _bpf(command: int, attributes: bytes) -> int:
    """bpf(2), called again while the kernel answers EAGAIN, at most `BPF_ATTEMPTS` times."""
    for _ in range(BPF_ATTEMPTS - 1):
        try:
            return _bpf_once(command, attributes)
        except OSError as error:
            if error.errno != errno.EAGAIN:
                raise
    return _bpf_once(command, attributes)


def _bpf_once(command: int, attributes: bytes) -> int:
    number = SYSCALL_NUMBERS.get(platform.machine())
    if number is None:
        raise OSError(0, f"herd does not know the bpf() system call on {platform.machine()}")
    buffer = ctypes.create_string_buffer(attributes, len(attributes))
    return libc.check(
        libc.libc.syscall(
            ctypes.c_long(number), ctypes.c_int(command), buffer, ctypes.c_uint(len(attributes))
        )
    )


def _load(code: bytes, log_size: int = 0) -> int:
    """Load a device program; return its descriptor. A program the kernel refuses is loaded once
    more with the verifier's log, which then goes into the error (the log costs a millisecond)."""
    instructions = ctypes.create_string_buffer(code, len(code))
    license_text = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(log_size)
    attributes = struct.pack(
        "=IIQQIIQII16s",
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        ctypes.addressof(instructions),
        ctypes.addressof(license_text),
        1 if log_size else 0,  # log level
        log_size,
        ctypes.addressof(log) if log_size else 0,
        0,  # kernel version
        0,  # flags
        b"herd_devices",
    )
    try:
        return _bpf(BPF_PROG_LOAD, attributes)
    except OSError as error:
        if not log_size and error.errno == errno.EINVAL:
            return _load(code, VERIFIER_LOG_SIZE)
        verifier = log.value.decode(errors="replace").strip()
        raise OSError(error.errno, f"{error.strerror}{': ' + verifier if verifier else ''}") from None


@cache
def _warn_once(reason: str) -> None:
    log.warning("containers get no device policy and may open any host device: %s", reason)


@cache
def unavailable() -> str | None:
    """Why this host cannot give containers a device policy, or None when it can (tried once)."""
    if not unified_mounted():
        return "the unified cgroup hierarchy (cgroup2) is not mounted"
    try:
        os.close(_load(program(BASE_RULES)))
    except OSError as error:
        return f"the kernel refuses cgroup device programs: {error.strerror}"
    return None


def unified_path(cgroup: Cgroup) -> Path | None:
    """The cgroup's directory in the unified (v2) hierarchy, where device programs attach."""
    return next((path for path in cgroup.paths if (path / "cgroup.controllers").exists()), None)


def apply_policy(name: str, cgroup: Cgroup, granted: Iterable[DeviceNode]) -> None:
    """Allow the processes of `cgroup` the base devices and `granted`, and deny every other one.

    Where the host cannot (no unified hierarchy, no cgroup BPF, a seccomp filter that refuses
    bpf()), containers go without a policy, as they would without herd: a warning says so once,
    and so does `herd doctor`.
    """
    target = unified_path(cgroup)
    if target is None or unavailable() is not None:
        _warn_once(unavailable() or "the machine's cgroup is not in a unified hierarchy")
        return
    rules = [*BASE_RULES, *_pty_rules()]
    rules += [Rule(node.kind, node.major, node.minor, node.access) for node in granted if node.access]
    try:
        descriptor = _load(program(rules))
        try:
            directory = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _bpf(
                    BPF_PROG_ATTACH,
                    struct.pack("=IIIII", directory, descriptor, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0),
                )
            finally:
                os.close(directory)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise MachineError(f"machine {name}: cannot set its device policy on {target}: {error}") from None
