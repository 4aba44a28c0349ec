"""A machine never touches the host: probes an adversary would try from a test's commands.

Each case runs only on backends that declare the `confined` capability; the others are skipped
with that reason, which `herd plugins` and `herd doctor` state too. Each probe checks the effect on
the host, whatever the machine's kernel says: a VM may change its own sysctls, a container may not,
and neither may change the host's. The probes that need a machine and nothing else share one, booted
once for the module: what one tries inside the machine changes nothing that another checks.
"""

from __future__ import annotations

import ctypes
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from herd.testing.fixtures import machines

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytest_plugin import Herd


CONFINED = ["confined"]
# open_by_handle_at: with CAP_DAC_READ_SEARCH over the host, a process opens any file of a host file
# system by its handle, through any descriptor on that file system (here the machine's /usr, which
# is the host's in a container). The host hands the machine the handle of a directory of its own;
# the machine tries to create a file in it. A VM's kernel has handles of its own file systems only.
OPEN_BY_HANDLE = r"""
import ctypes, os, struct, sys
handle_type, handle, name = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
buffer = ctypes.create_string_buffer(struct.pack("Ii", len(handle), handle_type) + handle)
mount_fd = os.open("/usr", os.O_RDONLY)
fd = libc.open_by_handle_at(mount_fd, buffer, os.O_RDONLY | os.O_DIRECTORY)
if fd < 0:
    sys.exit("open_by_handle_at: " + os.strerror(ctypes.get_errno()))
os.close(os.open(name, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
print("created", name)
"""
MAX_HANDLE_SZ = 128  # bytes, <fcntl.h>


@machines({"m": {}}, scope="module", requires=CONFINED)
def probed(run: Herd) -> None:
    """The machine the probes share, started before the first."""
    run.start_all()


@pytest.fixture
def m(probed: Herd) -> Machine:
    return probed.m


def _top_of_file_system(path: Path) -> Path:
    """The highest directory above `path` on the same file system: where a file made by a handle
    that escaped the machine's view would be plainly the host's."""
    device = path.stat().st_dev
    while path.parent != path and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def _handle_of(path: Path) -> tuple[int, bytes] | None:
    """The host's file handle of `path` (its type and bytes), or None where its file system has
    none (then nothing on it can be opened by a handle)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    ctypes.c_uint.from_buffer(buffer).value = MAX_HANDLE_SZ
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, bytes(path), buffer, ctypes.byref(mount_id), 0) != 0:
        if ctypes.get_errno() == errno.EOPNOTSUPP:
            return None
        raise OSError(ctypes.get_errno(), f"name_to_handle_at {path}")
    size = ctypes.c_uint.from_buffer(buffer).value
    return ctypes.c_int.from_buffer(buffer, 4).value, buffer.raw[8 : 8 + size]


def test_open_by_handle_is_refused(m: Machine) -> None:
    top = _top_of_file_system(Path("/usr"))
    handle = _handle_of(top)
    if handle is None:
        pytest.skip(f"the host's file system at {top} has no file handles: none can be opened")
    marker = top / f"herd-conformance-{uuid.uuid4().hex}"
    try:
        arguments = f"{handle[0]} {handle[1].hex()} {marker.name}"
        _, output = m.execute(f"python3 -c '{OPEN_BY_HANDLE}' {arguments} 2>&1")
        assert not marker.exists(), f"a machine created {marker} on the host by a handle: {output}"
    finally:
        marker.unlink(missing_ok=True)


def test_shared_system_files_stay_read_only(m: Machine) -> None:
    marker = f"herd-conformance-{uuid.uuid4().hex}"
    m.execute(f"mount -o remount,bind,rw /usr; touch /usr/{marker}")
    m.execute(f"mount -o remount,rw /; touch /usr/{marker}")
    assert not Path(f"/usr/{marker}").exists(), "a machine wrote a file into the host's /usr"
    assert m.execute(f"test -e /usr/{marker}")[0] != 0


def test_host_kernel_settings_are_out_of_reach(m: Machine) -> None:
    setting = Path("/proc/sys/vm/swappiness")
    before = setting.read_text().strip()
    wanted = "13" if before != "13" else "17"
    m.execute(
        f"echo {wanted} > /proc/sys/vm/swappiness; "
        f"mount -o remount,rw /proc/sys && echo {wanted} > /proc/sys/vm/swappiness; "
        f"mkdir -p /tmp/proc && mount -t proc proc /tmp/proc && echo {wanted} > /tmp/proc/sys/vm/swappiness; "
        f"mount -o remount,rw /tmp/proc/sys && echo {wanted} > /tmp/proc/sys/vm/swappiness; "
        "mount -o remount,rw /sys; true"
    )
    after = setting.read_text().strip()
    if after != before:
        setting.write_text(before)
    assert after == before, "a machine changed the host's vm.swappiness"


def test_commands_are_confined_as_the_machines_init(m: Machine) -> None:
    fields = "grep -E '^(CapBnd|CapEff|Seccomp|Seccomp_filters|NoNewPrivs):'"
    assert m.succeed(f"{fields} /proc/self/status") == m.succeed(f"{fields} /proc/1/status")
    assert m.succeed("readlink /proc/self/ns/user") == m.succeed("readlink /proc/1/ns/user")


@pytest.fixture
def host_secrets() -> Iterator[dict[str, str]]:
    """A secret in the host's /etc (readable by root alone) and state under /var/lib, each with
    content that only the host has; removed afterwards."""
    name, token = uuid.uuid4().hex, uuid.uuid4().hex
    secret = Path(f"/etc/herd-conformance-secret-{name}")
    state = Path(f"/var/lib/herd-conformance-state-{name}")
    secret.write_text(f"secret {token}\n")
    secret.chmod(0o600)
    state.mkdir()
    (state / "data").write_text(f"state {token}\n")
    try:
        yield {"secret": str(secret), "state": str(state / "data"), "token": token}
    finally:
        secret.unlink()
        (state / "data").unlink()
        state.rmdir()


@pytest.mark.herd(machines={"m": {}}, requires=CONFINED)
def test_host_secrets_and_state_are_not_visible(host_secrets: dict[str, str], herd: Herd) -> None:
    m = herd.machines["m"]
    token = host_secrets["token"]
    for path in (host_secrets["secret"], host_secrets["state"]):
        status, output = m.execute(f"cat {path} 2>&1")
        assert status != 0 and token not in output, f"{path} of the host is readable in a machine"
    shadow = Path("/etc/shadow").read_text()
    hashes = {line.split(":")[1] for line in shadow.splitlines() if line.count(":") > 2}
    seen = m.execute("cat /etc/shadow")[1]
    leaked = [h for h in hashes if h.startswith("$") and h in seen]
    assert not leaked, "a machine sees the host's password hashes"
    for key in Path("/etc/ssh").glob("ssh_host_*_key") if Path("/etc/ssh").is_dir() else ():
        assert m.execute(f"test -e {key}")[0] != 0, f"the host's {key} is visible in a machine"
    assert os.stat(host_secrets["secret"]).st_mode & 0o777 == 0o600
