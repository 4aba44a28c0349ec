"""What `herd doctor` checks for the Docker backend, with the fix for each missing piece."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

from herd.plugin import HostCheck, hierarchies
from herd_docker import engine


def host_checks() -> Iterator[HostCheck]:
    address = engine.engine_address()
    problem = engine.remote_problem()
    yield HostCheck(
        "local engine",
        problem is None,
        problem or address,
        problem and "unset DOCKER_HOST, or point it at this host's engine",
    )
    if problem is None:
        reachable = engine.reachable()
        yield HostCheck(
            "engine answers",
            reachable,
            f"{address} answers" if reachable else f"nothing answers at {address}",
            None if reachable else "apt-get install docker.io, then start dockerd (./bootstrap.sh does both)",
        )
        remapped = engine.remapped_root()
        yield HostCheck(
            "user-namespace remapping",
            True,
            f"container root is host id {remapped}"
            if remapped is not None
            else "off: root in a machine is root on the host",
            None
            if remapped is not None
            else 'start dockerd with --userns-remap=default (or "userns-remap": "default" in '
            f"{engine.DAEMON_CONFIG}), as ./bootstrap.sh does when it starts the engine",
            warning=remapped is None,
        )
    with open("/proc/filesystems") as filesystems:
        overlay = any(line.split()[-1] == "overlay" for line in filesystems if line.strip())
    yield HostCheck(
        "overlayfs",
        overlay,
        "available" if overlay else "the kernel does not offer overlayfs: /etc and /var are overlays",
        None if overlay else "modprobe overlay",
    )
    unified = any((path / "cgroup.controllers").exists() for path in hierarchies())
    yield HostCheck(
        "unified cgroup hierarchy",
        unified,
        "mounted" if unified else "not mounted: systemd in the containers needs cgroup2",
        None if unified else "mount -t cgroup2 none /sys/fs/cgroup/unified",
    )
    found = shutil.which("unshare")
    yield HostCheck(
        "unshare",
        found is not None,
        found or "not found: the containers start systemd through it",
        None if found else "apt-get install util-linux",
    )
