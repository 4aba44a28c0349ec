"""An unpacked root file system (a Debian root, an OCI image's) described as the image machines boot.

Its top-level links are every machine's; its system trees (/usr, and /bin, /lib and the like where
they are directories rather than links into /usr) are shared read-only; every other top-level
directory with something in it (/etc, /var, and an OCI image's /app or /srv) is copy-on-write,
each machine writing into a layer of its own. What the kernel and the machine's init make at boot
(/proc, /sys, /dev, /run, /tmp) is the machine's own, empty. The root's files keep the image's own
owners: herd gives confined machines an id-mapped view of them. A machine's `packages` go in a
layer over the root, built by the root's own apt from the sources it names (herd's package layers:
`herd.plugin.packagelayer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from herd.plugin import ImageError, ImageRoot, Layer, Tree, hostimage, packagelayer
from herd_images.unpack import LayerError, resolve_inside

SHARED = ("usr", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
MACHINES_OWN = ("proc", "sys", "dev", "run", "tmp")
ALWAYS_OVERLAID = ("etc", "var")
# Where an image's systemd is, one of them resolved inside the root; /sbin/init leads there too.
SYSTEMD = ("usr/lib/systemd/systemd", "lib/systemd/systemd")


def image_root(
    directory: Path,
    description: str,
    packages: Sequence[str] = (),
    progress: Callable[[str], None] = lambda _step: None,
) -> ImageRoot:
    """`directory` (an unpacked root, never written again) as an image; with a layer of
    `packages` over it (herd's package layers, cached) where the machine declares some."""
    top_level: list[tuple[str, str | None]] = []
    shared: list[str] = []
    overlaid: list[str] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_symlink():
            top_level.append((entry.name, os.readlink(entry.path)))
            continue
        if not entry.is_dir() or entry.name in MACHINES_OWN:
            continue
        top_level.append((entry.name, None))
        if entry.name in SHARED:
            shared.append(entry.name)
        elif entry.name in ALWAYS_OVERLAID or any(os.scandir(entry.path)):
            overlaid.append(entry.name)
    for name in ALWAYS_OVERLAID:
        if not (directory / name).is_dir():
            raise ImageError(f"{description} has no /{name} directory: machines boot whole operating systems")
    layer = None
    if packages:
        base = packagelayer.Base(str(directory), (*shared, *overlaid), description, key=directory.parent.name)
        layer = packagelayer.ensure(base, packages, progress)
        description = f"{description} + {', '.join(packages)}"

    def tree(name: str) -> Tree:
        own = Layer(str(directory / name))
        if layer is not None and hostimage.layer_holds(layer, name):
            return Tree(f"/{name}", (Layer(str(layer / name)), own))
        return Tree(f"/{name}", (own,))

    return ImageRoot(description, tuple(top_level), tuple(map(tree, shared)), tuple(map(tree, overlaid)))


def require_systemd(directory: Path, description: str) -> None:
    """ImageError unless the root has systemd to boot: herd's machines are systemd machines."""
    for path in (*SYSTEMD, "sbin/init"):
        try:
            found = resolve_inside(directory, path.split("/"), follow_last=True)
        except LayerError:
            continue
        if found.is_file() and os.access(found, os.X_OK) and (path != "sbin/init" or found.name == "systemd"):
            return
    raise ImageError(
        f"{description} has no systemd (neither /sbin/init leading to systemd nor "
        "/lib/systemd/systemd): herd's machines boot systemd as their init"
    )
