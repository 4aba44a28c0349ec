"""NVIDIA GPUs found on the host the way the NVIDIA container toolkit finds them, for hosts
without a CDI spec of kind nvidia.com/gpu.

The GPUs are those the driver lists in /proc/driver/nvidia/gpus (in PCI order, which is NVML's
and so nvidia-smi's index order), each with its UUID and the minor number of its /dev/nvidiaN; a
host without that directory gets its /dev/nvidiaN nodes in number order. Every grant adds the
driver's control nodes (nvidiactl, nvidia-uvm, nvidia-uvm-tools, nvidia-modeset: those present),
and its user-space libraries, found through the linker cache, and tools, bound read-only at the
paths they have on the host.

Everything is looked up under $HERD_NVIDIA_DRIVER_ROOT (by default /), which tests point at a tree
of their own and which can name a driver installed in another root (the toolkit's driver root).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from herd.plugin import DeviceGrant, DeviceNode
from herd_gpu import ldcache, nodes
from herd_gpu.nodes import DeviceError

KIND = "nvidia.com/gpu"
ROOT_VARIABLE = "HERD_NVIDIA_DRIVER_ROOT"
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
# The toolkit's compute and utility libraries (its default driver capabilities).
LIBRARIES = (
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-allocator.so",
    "libnvidia-cfg.so",
    "libnvidia-compiler.so",
    "libnvidia-fatbinaryloader.so",
    "libnvidia-gpucomp.so",
    "libnvidia-ml.so",
    "libnvidia-nvvm.so",
    "libnvidia-opencl.so",
    "libnvidia-pkcs11-openssl3.so",
    "libnvidia-pkcs11.so",
    "libnvidia-ptxjitcompiler.so",
)
TOOLS = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
TOOL_DIRECTORIES = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
_GPU_NODE = re.compile(r"^nvidia(\d+)$")


@dataclass(frozen=True)
class Gpu:
    index: int
    node: DeviceNode
    uuid: str | None
    pci: str | None


@dataclass(frozen=True)
class Driver:
    """What the host's NVIDIA driver offers: its GPUs, and what every grant of one of them adds."""

    root: Path
    gpus: tuple[Gpu, ...]
    control: tuple[DeviceNode, ...]
    mounts: tuple[tuple[str, str, bool], ...]

    def names(self) -> list[tuple[str, str]]:
        """(request, description) for each way to ask for these GPUs."""
        found = []
        for gpu in self.gpus:
            about = f"NVIDIA GPU {gpu.index}" + (f" at {gpu.pci}" if gpu.pci else "")
            found.append((f"{KIND}={gpu.index}", f"{about}, {gpu.node.guest_path}"))
            if gpu.uuid:
                found.append((f"{KIND}={gpu.uuid}", f"{about} by its UUID"))
        if self.gpus:
            found.append((f"{KIND}=all", f"all {len(self.gpus)} NVIDIA GPU(s)"))
        return found


def driver_root() -> Path:
    return Path(os.environ.get(ROOT_VARIABLE, "/"))


def _inside(root: Path, path: str) -> str:
    return str(root / path.lstrip("/"))


def _information(directory: Path) -> dict[str, str]:
    fields = {}
    for line in (directory / "information").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _gpus(root: Path) -> tuple[Gpu, ...]:
    listing = root / "proc/driver/nvidia/gpus"
    if listing.is_dir():
        gpus = []
        for index, directory in enumerate(sorted(listing.iterdir())):
            fields = _information(directory)
            minor = fields.get("Device Minor", "")
            if not minor.isdigit():
                raise DeviceError(f"{directory / 'information'} gives no device minor")
            guest = f"/dev/nvidia{minor}"
            gpus.append(
                Gpu(index, nodes.node(_inside(root, guest), guest), fields.get("GPU UUID"), directory.name)
            )
        return tuple(gpus)
    dev = root / "dev"
    numbers = sorted(int(m.group(1)) for name in _listing(dev) if (m := _GPU_NODE.match(name)))
    return tuple(
        Gpu(index, nodes.node(_inside(root, f"/dev/nvidia{n}"), f"/dev/nvidia{n}"), None, None)
        for index, n in enumerate(numbers)
    )


def _listing(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _libraries(root: Path) -> list[str]:
    """The driver's libraries the linker cache knows, as paths on the host (links resolved)."""
    cache = root / "etc/ld.so.cache"
    if not cache.exists():
        return []
    try:
        known = ldcache.entries(cache)
    except (ldcache.CacheError, ValueError, OSError) as error:
        raise DeviceError(f"cannot read the linker cache {cache}: {error}") from None
    found = []
    for name, path in known:
        if any(name == library or name.startswith(library + ".") for library in LIBRARIES):
            found.append(path)
    return found


def _tools(root: Path) -> list[str]:
    found = []
    for tool in TOOLS:
        for directory in TOOL_DIRECTORIES:
            path = f"/{directory}/{tool}"
            if os.path.isfile(_inside(root, path)):
                found.append(path)
                break
    return found


def _mounts(root: Path, paths: list[str]) -> tuple[tuple[str, str, bool], ...]:
    """Read-only mounts of `paths` (inside `root`) at the file each leads to, once each: a
    library's links (libcuda.so.1 -> libcuda.so.550.54.15) are the machine's own."""
    real_root = os.path.realpath(root)
    mounts: dict[str, tuple[str, str, bool]] = {}
    for path in paths:
        real = os.path.realpath(_inside(root, path))
        guest = (
            "/" + os.path.relpath(real, real_root) if real.startswith(real_root.rstrip("/") + "/") else path
        )
        mounts.setdefault(guest, (real, guest, True))
    return tuple(mounts.values())


def discover(root: Path | None = None) -> Driver:
    """The driver under `root` (by default $HERD_NVIDIA_DRIVER_ROOT); no GPUs if there is none."""
    root = driver_root() if root is None else root
    gpus = _gpus(root)
    if not gpus:
        return Driver(root, (), (), ())
    control = tuple(
        nodes.node(_inside(root, f"/dev/{name}"), f"/dev/{name}")
        for name in CONTROL_NODES
        if os.path.exists(_inside(root, f"/dev/{name}"))
    )
    if not any(node.guest_path == "/dev/nvidiactl" for node in control):
        raise DeviceError(
            f"{_inside(root, '/dev/nvidiactl')} is missing: the NVIDIA driver is not loaded "
            "(`nvidia-smi` or `nvidia-modprobe` loads it and makes its nodes)"
        )
    return Driver(root, gpus, control, _mounts(root, _libraries(root) + _tools(root)))


def grant(request: str, driver: Driver) -> DeviceGrant:
    """The grant of `nvidia.com/gpu=<index|UUID|all>` from what discovery found."""
    name = request.partition("=")[2]
    if not driver.gpus:
        raise DeviceError(
            f"no NVIDIA GPU on this host: {driver.root / 'dev'} has no nvidia0..N and no CDI spec defines "
            f"{KIND} (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` writes one)"
        )
    chosen = [g for g in driver.gpus if name in ("all", str(g.index), g.uuid)]
    if not chosen:
        known = ", ".join(request for request, _ in driver.names())
        raise DeviceError(f"no NVIDIA GPU {name!r} on this host (it has: {known})")
    return DeviceGrant(
        request=request,
        nodes=tuple(gpu.node for gpu in chosen) + driver.control,
        mounts=driver.mounts,
    )
