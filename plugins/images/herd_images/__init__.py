"""herd's image providers: what a machine boots other than the host's own OS.

This module is the plugin (entry point `images` in `herd.plugins`). It provides four image kinds:

- `debian:SUITE`: a Debian root built with mmdebstrap from the host's Debian mirror (`debian`);
- `oci:PATH`: an OCI image layout or a docker-archive on disk, unpacked (`oci`);
- `docker:NAME`: an image of the local Docker engine, saved from it and unpacked as `oci:` is;
- `{"nixos": "/nix/store/…-nixos-system-…"}`: a NixOS system, booted by its own init (`nixos`).

Built roots are entries of herd's image cache (`herd.plugin.imagecache`) under a key of what they
hold, so a second run boots at once; `packages` go in a layer over a Debian or OCI root, built by
herd's own package layers (`herd.plugin.packagelayer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from herd.plugin import ImageRoot, MachineSpec, hookimpl
from herd_images import debian, nixos, oci

KINDS: dict[str, tuple[str, Any]] = {
    "debian": ("debian:SUITE, a Debian suite the host's mirror holds, built with mmdebstrap", debian),
    "oci": ("oci:PATH, an OCI image layout or a `docker save` archive on disk", oci),
    "docker": ("docker:NAME, an image of the local Docker engine (never pulled)", oci),
    "nixos": ('{"nixos": "/nix/store/…-nixos-system-…"}, a NixOS system, booted by its own init', nixos),
}


@hookimpl
def herd_image_kinds(offer: Callable[[str, str], None]) -> None:
    for kind, (description, _) in KINDS.items():
        offer(kind, description)


@hookimpl
def herd_image_check(machine: MachineSpec, kind: str) -> list[tuple[str, str]] | None:
    if kind not in KINDS:
        return None
    problems: list[tuple[str, str]] = KINDS[kind][1].check(machine, kind)
    return problems


@hookimpl
def herd_image_resolve(
    machine: MachineSpec, kind: str, id_shift: int, progress: Callable[[str], None]
) -> ImageRoot | None:
    if kind not in KINDS:
        return None
    root: ImageRoot = KINDS[kind][1].resolve(machine, kind, progress)
    return root
