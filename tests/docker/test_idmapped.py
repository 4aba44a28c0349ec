"""The id-mapped mount of the host's /usr that a remapped Docker machine is given (root)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from herd.host import idmap
from herd_docker import rootfs

SHIFT = 100000


def _mounted(point: Path) -> bool:
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == str(point) for line in mountinfo)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_usr_id_mapped_is_the_machines_roots_read_only_and_unmounted_after(tmp_path: Path) -> None:
    point = tmp_path / "usr"
    point.mkdir()
    idmap.mount_idmapped("/usr", point, SHIFT)
    try:
        assert _mounted(point)
        su = os.stat(point / "bin" / "su")
        assert (su.st_uid, su.st_gid) == (SHIFT, SHIFT)  # host root's file, the machine root's
        assert su.st_mode & stat.S_ISUID
        assert os.stat("/usr/bin/su").st_uid == 0  # the host's own view is unchanged
        with pytest.raises(OSError, match="Read-only file system"):
            (point / "herd-probe").write_text("x")
    finally:
        rootfs.unmount([point])
    assert not _mounted(point)
