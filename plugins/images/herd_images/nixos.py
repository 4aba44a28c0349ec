"""NixOS systems as machine roots: `"image": {"nixos": "/nix/store/…-nixos-system-…"}`.

A NixOS system (the `config.system.build.toplevel` of a NixOS configuration, its closure in the
host's /nix/store) brings everything in the store: the machine shares the host's /nix read-only,
starts with an empty /etc and /var of its own, and boots the system's own init (`<system>/init`,
NixOS's stage 2), which activates the system (/etc, users, /run/current-system) and then starts
systemd, as a NixOS container does. herd's units go to /etc/systemd/system.control, which NixOS's
activation leaves alone (it owns /etc/systemd/system) and systemd reads first.

Nothing is built or cached but two empty directories, the lowest layers of /etc and /var.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from herd.plugin import ImageRoot, Layer, MachineSpec, Tree, imagecache

STORE = Path("/nix/store")
UNIT_DIRECTORY = "systemd/system.control"  # below /etc
EMPTY = "empty-1"  # the key of the cache entry holding the empty /etc and /var
OVERLAID = ("etc", "var")


def _system(machine: MachineSpec) -> str:
    image = machine.image
    return str(image["nixos"]) if isinstance(image, Mapping) else str(image).partition(":")[2]


def check(machine: MachineSpec, kind: str) -> list[tuple[str, str]]:
    system = Path(_system(machine))
    problems = []
    if machine.packages:
        problems.append(("packages", "a NixOS system brings its packages: list them in its configuration"))
    if system.parent != STORE:
        problems.append(
            ("image", f"{system}: expected a NixOS system in {STORE} (its system.build.toplevel)")
        )
    elif not system.is_dir():
        problems.append(("image", f"{system} does not exist: build the system (or copy its closure) here"))
    elif not os.access(system / "init", os.X_OK):
        problems.append(("image", f"{system} has no executable init: it is not a NixOS system"))
    return problems


def _empty(directory: Path) -> None:
    for name in OVERLAID:
        (directory / name).mkdir(mode=0o755)


def resolve(machine: MachineSpec, kind: str, progress: Callable[[str], None]) -> ImageRoot:
    system = _system(machine)
    empty = imagecache.ensure("nixos", EMPTY, "an empty /etc and /var for NixOS systems", _empty, progress)
    return ImageRoot(
        description=f"nixos:{system}",
        # /usr is the machine's own: NixOS's activation makes /usr/bin/env there (and nspawn
        # wants a root with /usr before it runs an init)
        top_level=(("nix", None), ("usr", None), *((name, None) for name in OVERLAID)),
        shared=(Tree("/nix", (Layer(str(STORE.parent)),)),),
        overlaid=tuple(Tree(f"/{name}", (Layer(str(empty / name)),)) for name in OVERLAID),
        init=f"{system}/init",
        unit_directory=UNIT_DIRECTORY,
    )
