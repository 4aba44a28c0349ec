"""What the device-grant tests share: CDI spec directories, fake NVIDIA driver roots and fake sysfs
trees, all under the test's temporary directory and pointed at through herd-gpu's variables.

There is no GPU on these machines. Device nodes are the host's own (/dev/null, /dev/zero) where a
test needs no root, and nodes made with mknod (`make_node`, root only) under other names where a
container is to bind them; every node made is removed, and checked gone, when the test ends.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from herd_gpu import cdi, ldcache, nvidia, vfio

SpecWriter = Callable[..., Path]


@pytest.fixture
def cdi_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CDI spec directory, the only one herd-gpu reads."""
    directory = tmp_path / "cdi"
    directory.mkdir()
    monkeypatch.setenv(cdi.SPEC_DIRS_VARIABLE, str(directory))
    return directory


@pytest.fixture
def write_spec(cdi_dir: Path) -> SpecWriter:
    """Write a spec document into the CDI directory (JSON or YAML by the name's suffix), or text
    as it is."""

    def write(name: str, document: Any, directory: Path = cdi_dir) -> Path:
        path = directory / name
        if isinstance(document, str):
            path.write_text(document)
        elif path.suffix == ".json":
            path.write_text(json.dumps(document))
        else:
            path.write_text(yaml.safe_dump(document))
        return path

    return write


def spec(kind: str = "example.com/gpu", version: str = "0.6.0", **devices: dict[str, Any]) -> dict[str, Any]:
    """A spec document with one device per keyword (name: its containerEdits)."""
    return {
        "cdiVersion": version,
        "kind": kind,
        "devices": [{"name": name, "containerEdits": edits} for name, edits in devices.items()],
    }


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[[str, int, int], Path]]:
    """mknod a character device with the given numbers under the temporary directory (root only)."""
    made: list[Path] = []

    def make(name: str, major: int, minor: int) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink()
        assert not path.exists()


def write_ld_cache(path: Path, libraries: dict[str, str]) -> None:
    """A linker cache in glibc's new format naming `libraries` (name: path), as ldconfig writes it:
    a 48-byte header, 24-byte entries, then the strings, offsets counted from the file's start."""
    flags = ldcache.FLAG_ELF_LIBC6 | ldcache.ARCH_FLAGS.get(os.uname().machine, 0)
    strings = bytearray()
    table_end = 48 + 24 * len(libraries)
    entries = b""
    for name, target in libraries.items():
        key = table_end + len(strings)
        strings += name.encode() + b"\0"
        value = table_end + len(strings)
        strings += target.encode() + b"\0"
        entries += struct.pack("<iIIIQ", flags, key, value, 0, 0)
    header = b"glibc-ld.so.cache" + b"1.1" + struct.pack("<II", len(libraries), len(strings)) + bytes(20)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + entries + strings)


@pytest.fixture
def driver_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty NVIDIA driver root, the one herd-gpu looks in; tests fill it."""
    root = tmp_path / "driver"
    (root / "dev").mkdir(parents=True)
    monkeypatch.setenv(nvidia.ROOT_VARIABLE, str(root))
    return root


def add_gpu(root: Path, pci: str, minor: int, uuid: str) -> None:
    """What the driver shows of one GPU in /proc/driver/nvidia/gpus."""
    directory = root / "proc/driver/nvidia/gpus" / pci
    directory.mkdir(parents=True)
    (directory / "information").write_text(
        f"Model: \t\t NVIDIA Fake\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\nBus Location: \t {pci}\n"
        f"Device Minor: \t {minor}\nGPU Excluded:\t No\n"
    )


class FakeSysfs:
    """PCI functions, drivers and IOMMU groups as sysfs shows them, under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bus/pci/devices").mkdir(parents=True)

    def load_driver(self, name: str) -> None:
        (self.root / "bus/pci/drivers" / name).mkdir(parents=True, exist_ok=True)

    def add(self, address: str, group: int | None, driver: str | None, pci_class: int = 0x030000) -> None:
        device = self.root / "bus/pci/devices" / address
        device.mkdir()
        (device / "class").write_text(f"0x{pci_class:06x}\n")
        if group is not None:
            members = self.root / "kernel/iommu_groups" / str(group) / "devices"
            members.mkdir(parents=True, exist_ok=True)
            (device / "iommu_group").symlink_to(members.parent)
            (members / address).symlink_to(device)
        if driver is not None:
            self.load_driver(driver)
            (device / "driver").symlink_to(self.root / "bus/pci/drivers" / driver)
            (self.root / "bus/pci/drivers" / driver / address).symlink_to(device)


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSysfs:
    root = tmp_path / "sys"
    monkeypatch.setenv(vfio.SYSFS_VARIABLE, str(root))
    return FakeSysfs(root)
