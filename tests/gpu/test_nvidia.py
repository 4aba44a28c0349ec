"""NVIDIA discovery on fake driver roots: GPUs by index and UUID, control nodes, libraries found
through the linker cache, tools; and the linker cache reader against this host's own cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from herd.hooks.types import DeviceNode
from herd_gpu import ldcache, nvidia
from herd_gpu.nodes import DeviceError

from .conftest import add_gpu, write_ld_cache

UUID_0 = "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c"
UUID_1 = "GPU-9d3e0a11-52f2-4c1b-8e0e-3c1f3d2f1a77"
LIB = "/usr/lib/x86_64-linux-gnu"


LDCONFIG_LABELS = {"x86_64": "libc6,x86-64", "aarch64": "libc6,AArch64"}  # what `ldconfig -p` prints


@pytest.mark.skipif(
    shutil.which("ldconfig") is None or os.uname().machine not in LDCONFIG_LABELS,
    reason="no ldconfig, or an architecture these tests do not know",
)
def test_the_cache_reader_agrees_with_ldconfig_on_this_host() -> None:
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    printed = re.findall(r"^\s+(\S+) \((.*)\) => (.*)$", listing, re.MULTILINE)
    label = LDCONFIG_LABELS[os.uname().machine]
    ours = sorted((name, path) for name, flags, path in printed if flags.split(",")[:2] == label.split(","))
    assert len(ours) > 10, listing[:300]
    assert sorted(ldcache.entries(Path("/etc/ld.so.cache"))) == ours


def test_the_cache_reader_refuses_other_files(tmp_path: Path) -> None:
    other = tmp_path / "ld.so.cache"
    other.write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(ldcache.CacheError, match="not a linker cache"):
        ldcache.entries(other)


def fill(root: Path) -> None:
    """Two GPUs (minors 0 and 1, PCI order), the control nodes, two libraries, nvidia-smi."""
    for name, target in (
        ("nvidia0", "zero"),
        ("nvidia1", "full"),
        ("nvidiactl", "null"),
        ("nvidia-uvm", "urandom"),
    ):
        (root / "dev" / name).symlink_to(f"/dev/{target}")
    add_gpu(root, "0000:41:00.0", 1, UUID_1)
    add_gpu(root, "0000:01:00.0", 0, UUID_0)
    lib = root / LIB.lstrip("/")
    lib.mkdir(parents=True)
    (lib / "libcuda.so.550.54.15").write_text("")
    (lib / "libcuda.so.1").symlink_to("libcuda.so.550.54.15")
    (lib / "libnvidia-ml.so.550.54.15").write_text("")
    (lib / "libz.so.1").write_text("")
    write_ld_cache(
        root / "etc/ld.so.cache",
        {
            "libcuda.so.1": f"{LIB}/libcuda.so.1",
            "libcuda.so": f"{LIB}/libcuda.so.1",
            "libnvidia-ml.so.1": f"{LIB}/libnvidia-ml.so.550.54.15",
            "libz.so.1": f"{LIB}/libz.so.1",
        },
    )
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/nvidia-smi").write_text("#!/bin/sh\n")


def test_gpus_are_found_in_pci_order_with_their_uuids(driver_root: Path) -> None:
    fill(driver_root)
    driver = nvidia.discover()
    assert [(g.index, g.node.guest_path, g.uuid, g.pci) for g in driver.gpus] == [
        (0, "/dev/nvidia0", UUID_0, "0000:01:00.0"),
        (1, "/dev/nvidia1", UUID_1, "0000:41:00.0"),
    ]
    assert driver.gpus[0].node == DeviceNode(str(driver_root / "dev/nvidia0"), "/dev/nvidia0", "c", 1, 5)
    assert [node.guest_path for node in driver.control] == ["/dev/nvidiactl", "/dev/nvidia-uvm"]
    root = str(driver_root)
    assert driver.mounts == (
        (f"{root}{LIB}/libcuda.so.550.54.15", f"{LIB}/libcuda.so.550.54.15", True),
        (f"{root}{LIB}/libnvidia-ml.so.550.54.15", f"{LIB}/libnvidia-ml.so.550.54.15", True),
        (f"{root}/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi", True),
    )
    assert [name for name, _ in driver.names()] == [
        "nvidia.com/gpu=0",
        f"nvidia.com/gpu={UUID_0}",
        "nvidia.com/gpu=1",
        f"nvidia.com/gpu={UUID_1}",
        "nvidia.com/gpu=all",
    ]


@pytest.mark.parametrize(
    ("name", "gpus"),
    [("0", ["/dev/nvidia0"]), (UUID_1, ["/dev/nvidia1"]), ("all", ["/dev/nvidia0", "/dev/nvidia1"])],
)
def test_a_grant_has_its_gpus_the_control_nodes_and_the_driver_files(
    driver_root: Path, name: str, gpus: list[str]
) -> None:
    fill(driver_root)
    grant = nvidia.grant(f"nvidia.com/gpu={name}", nvidia.discover())
    assert [node.guest_path for node in grant.nodes] == [*gpus, "/dev/nvidiactl", "/dev/nvidia-uvm"]
    assert len(grant.mounts) == 3 and all(read_only for _, _, read_only in grant.mounts)
    assert grant.environment == {}


def test_without_proc_the_nodes_are_taken_in_number_order(driver_root: Path) -> None:
    for name, target in (("nvidia10", "zero"), ("nvidia2", "full"), ("nvidiactl", "null")):
        (driver_root / "dev" / name).symlink_to(f"/dev/{target}")
    driver = nvidia.discover()
    assert [(g.index, g.node.guest_path, g.uuid) for g in driver.gpus] == [
        (0, "/dev/nvidia2", None),
        (1, "/dev/nvidia10", None),
    ]
    assert driver.mounts == ()  # no linker cache in this root
    assert [n for n, _ in driver.names()] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=all"]


def test_no_gpu_and_unknown_gpus(driver_root: Path) -> None:
    with pytest.raises(
        DeviceError, match=r"no NVIDIA GPU on this host: .*dev has no nvidia0\.\.N.*nvidia-ctk cdi generate"
    ):
        nvidia.grant("nvidia.com/gpu=0", nvidia.discover())
    fill(driver_root)
    with pytest.raises(DeviceError) as caught:
        nvidia.grant("nvidia.com/gpu=7", nvidia.discover())
    assert str(caught.value).startswith("no NVIDIA GPU '7' on this host (it has: nvidia.com/gpu=0, ")


def test_a_driver_without_its_control_node(driver_root: Path) -> None:
    (driver_root / "dev/nvidia0").symlink_to("/dev/zero")
    with pytest.raises(DeviceError, match=r"nvidiactl is missing: the NVIDIA driver is not loaded"):
        nvidia.discover()
