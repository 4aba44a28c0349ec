"""Device grants in real nspawn containers (root): several containers use one device at once, the
grant's mounts and environment reach commands and services, and a container without the grant can
neither open nor create the device.

The "GPU" is a node made with mknod under another name: /dev/zero's numbers for the device the
containers share (it reads and writes), /dev/fuse's for a control node granted read-only, whose
numbers no container may use unless granted (and whose opening needs no capability, so only the
device policy stands in the way).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from herd import Test
from tests.conftest import assert_nothing_left

from .conftest import SpecWriter, add_gpu, spec, write_ld_cache

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="boots real machines: needs root")

FUSE = (10, 229)
# Waits until the other container has the device open too, while holding it open itself.
SHARE = (
    "exec 3<>/dev/herd-gpu0 && touch /srv/shared/{me} && "
    "until [ -e /srv/shared/{other} ]; do sleep 0.01; done && "
    "echo data >&3 && head -c 4 <&3 | od -An -tx1"
)
UNIT = (
    "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
    "ExecStart=/bin/sh -c 'printenv HERD_GPU_DRIVER > /srv/unit-environment'\n"
)


def run(test: Test, tmp_path: Path) -> Any:
    outcome = test.run(backend="nspawn", output_dir=tmp_path / "out", terminal=None)
    assert_nothing_left(outcome.run_id)
    return outcome


@pytest.fixture
def gpu_spec(write_spec: SpecWriter, make_node: Callable[[str, int, int], Path], tmp_path: Path) -> Path:
    """A CDI spec of kind herd.example/gpu: device 0 (a shared node and a read-only control node),
    with a model file mounted read-only, a shared directory, and environment."""
    gpu0 = make_node("nodes/gpu0", 1, 5)
    control = make_node("nodes/control", *FUSE)
    (tmp_path / "model.txt").write_text("model weights\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o1777)  # machines' roots are not host root: they write where anyone may
    document = spec(
        kind="herd.example/gpu",
        **{
            "0": {
                "env": ["HERD_GPU=0"],
                "deviceNodes": [
                    {"path": "/dev/herd-gpu0", "hostPath": str(gpu0)},
                    {"path": "/dev/herd-control", "hostPath": str(control), "permissions": "r"},
                ],
            }
        },
    )
    document["containerEdits"] = {
        "env": ["HERD_GPU_DRIVER=fake 1.0"],
        "mounts": [
            {
                "hostPath": str(tmp_path / "model.txt"),
                "containerPath": "/srv/model.txt",
                "options": ["ro", "bind"],
            },
            {"hostPath": str(tmp_path / "shared"), "containerPath": "/srv/shared", "options": ["bind"]},
        ],
    }
    return write_spec("herd-example.yaml", document)


def test_two_containers_share_the_device_and_a_third_cannot_touch_it(gpu_spec: Path, tmp_path: Path) -> None:
    def script(a, b, c, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(a.succeed, SHARE.format(me="a", other="b"), timeout=30)
            second = pool.submit(b.succeed, SHARE.format(me="b", other="a"), timeout=30)
            assert first.result().split() == second.result().split() == ["00"] * 4
        a.succeed("exec 3</dev/herd-control")  # granted "r": it opens for reading
        status, output = a.execute("sh -c 'exec 3>/dev/herd-control' 2>&1")
        assert status != 0 and "Operation not permitted" in output, output

        c.fail("test -e /dev/herd-gpu0", "test -e /dev/herd-control")
        status, output = c.execute(f"mknod /dev/herd-control c {FUSE[0]} {FUSE[1]} 2>&1")
        assert status != 0 and "Operation not permitted" in output, output
        # Nor through a devtmpfs of its own, which would show every node of the host: root in a
        # machine may not mount one, and could not open the nodes if it could.
        status, output = c.execute(
            "mkdir /run/devices && mount -t devtmpfs herd /run/devices 2>&1 && exec 3</run/devices/fuse"
        )
        assert status != 0, output

    test = Test(
        name="share",
        machines={
            "a": {"devices": ["herd.example/gpu=0"]},
            "b": {"devices": ["herd.example/gpu=0"]},
            "c": {},
        },
        script=script,
    )
    outcome = run(test, tmp_path)
    assert outcome.passed, outcome.error
    assert sorted(os.listdir(tmp_path / "shared")) == ["a", "b"]
    # What machines wrote on the host is their unprivileged ids', never host root's.
    assert all((tmp_path / "shared" / name).stat().st_uid != 0 for name in ("a", "b"))


def test_mounts_and_environment_reach_commands_and_services(gpu_spec: Path, tmp_path: Path) -> None:
    def script(a, c) -> None:  # type: ignore[no-untyped-def]
        assert a.succeed("cat /srv/model.txt") == "model weights\n"
        a.fail("echo overwritten > /srv/model.txt")  # mounted read-only
        assert a.succeed("echo $HERD_GPU_DRIVER/$HERD_GPU") == "fake 1.0/0\n"
        a.wait_for_unit("probe.service")
        assert a.succeed("cat /srv/unit-environment") == "fake 1.0\n"
        a.shutdown()
        assert a.succeed("echo $HERD_GPU; cat /srv/unit-environment") == "0\nfake 1.0\n"  # a second boot
        c.fail("test -e /srv/model.txt")
        assert c.succeed("echo ${HERD_GPU_DRIVER:-unset}") == "unset\n"

    test = Test(
        name="edits",
        machines={"a": {"devices": ["herd.example/gpu=0"], "units": {"probe.service": UNIT}}, "c": {}},
        script=script,
    )
    outcome = run(test, tmp_path)
    assert outcome.passed, outcome.error
    assert (tmp_path / "model.txt").read_text() == "model weights\n"


def test_a_discovered_nvidia_driver_is_bound_in(
    driver_root: Path, make_node: Callable[[str, int, int], Path], tmp_path: Path
) -> None:
    """The chain without a CDI spec: a fake driver root (nodes, /proc entry, linker cache) found as
    the NVIDIA container toolkit finds a driver, then bound into a container."""
    make_node("driver/dev/nvidia0", 1, 5)
    make_node("driver/dev/nvidiactl", 1, 3)
    add_gpu(driver_root, "0000:01:00.0", 0, "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c")
    # The host image shares the host's /usr read-only, so the fake library lives where a
    # container can get a mount point: /srv.
    library = driver_root / "srv/nvidia/libcuda.so.550.54.15"
    library.parent.mkdir(parents=True)
    library.write_text("not really libcuda\n")
    (library.parent / "libcuda.so.1").symlink_to(library.name)
    write_ld_cache(driver_root / "etc/ld.so.cache", {"libcuda.so.1": "/srv/nvidia/libcuda.so.1"})

    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.succeed("test -c /dev/nvidia0", "test -c /dev/nvidiactl", "test ! -e /dev/nvidia-uvm")
        assert m.succeed("cat /srv/nvidia/libcuda.so.550.54.15") == "not really libcuda\n"
        assert m.succeed("head -c 2 /dev/nvidia0 | od -An -tx1").split() == ["00", "00"]

    test = Test(
        name="nvidia",
        machines={"m": {"devices": ["nvidia.com/gpu=GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c"]}},
        script=script,
    )
    outcome = run(test, tmp_path)
    assert outcome.passed, outcome.error
