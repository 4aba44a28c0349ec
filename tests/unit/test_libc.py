"""herd.linux.libc: calls into the C library, their failures as OSError, mounts and network namespaces."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from herd.linux.libc import CLONE_NEWNET, MS_NOSUID, check, libc, mount, unmount

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) and unshare(2) need root")


def mount_options(point: Path) -> list[str] | None:
    """The per-mount options of the mount at `point` in /proc/self/mountinfo, or None if none."""
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if fields[4] == str(point):
                return fields[5].split(",")
    return None


def test_check_returns_what_a_call_that_worked_returned() -> None:
    assert check(libc.getpid()) == os.getpid()


def test_check_raises_the_errno_of_a_call_that_failed() -> None:
    with pytest.raises(OSError) as raised:
        check(libc.close(-1), "cannot close -1")
    assert raised.value.errno == errno.EBADF
    assert raised.value.strerror == f"cannot close -1: {os.strerror(errno.EBADF)}"
    with pytest.raises(OSError) as raised:
        check(libc.close(-1))
    assert raised.value.strerror == os.strerror(errno.EBADF)


def test_a_failed_mount_says_what_it_mounted_where(tmp_path: Path) -> None:
    target = tmp_path / "missing"
    with pytest.raises(OSError) as raised:
        mount("herd", target, "tmpfs")
    assert raised.value.errno in (errno.ENOENT, errno.EPERM)  # EPERM where we are not root
    assert raised.value.strerror == f"mount herd on {target}: {os.strerror(raised.value.errno)}"
    assert mount_options(target) is None


@needs_root
def test_mount_with_flags_and_options_then_detach(tmp_path: Path) -> None:
    mount("herd", tmp_path, "tmpfs", MS_NOSUID, "size=1m,mode=0700")
    try:
        options = mount_options(tmp_path)
        assert options is not None and "nosuid" in options
        assert os.statvfs(tmp_path).f_blocks * os.statvfs(tmp_path).f_frsize == 1 << 20
        assert tmp_path.stat().st_mode & 0o777 == 0o700
    finally:
        assert unmount(tmp_path)
    assert mount_options(tmp_path) is None
    assert not unmount(tmp_path), "there was nothing left to detach"


@needs_root
def test_unshare_gives_a_thread_a_network_namespace_of_its_own() -> None:
    found: dict[str, object] = {}

    def unshare() -> None:
        check(libc.unshare(CLONE_NEWNET), "cannot create a network namespace")
        found["inode"] = os.stat("/proc/thread-self/ns/net").st_ino
        with open("/proc/thread-self/net/dev") as dev:
            found["links"] = [line.split(":")[0].strip() for line in dev if ":" in line]

    thread = threading.Thread(target=unshare)
    thread.start()
    thread.join()
    assert found["inode"] != os.stat("/proc/self/ns/net").st_ino
    assert found["links"] == ["lo"]


def test_setns_refuses_a_namespace_of_another_type() -> None:
    uts = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as raised:
            check(libc.setns(uts, CLONE_NEWNET), "cannot enter a network namespace")
    finally:
        os.close(uts)
    assert raised.value.errno in (errno.EINVAL, errno.EPERM)
    assert raised.value.strerror.startswith("cannot enter a network namespace: ")
