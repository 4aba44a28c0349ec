"""The `host` image, as an image provider: the host's own OS, with a layer of the machine's
`packages` over it where it declares some.

herd registers this module with every run's plugins itself (`herd.run.images`): it is the one
image provider the core has, and what a machine runs when it names no image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from herd.declare.spec import HOST_IMAGE, MachineSpec
from herd.hooks.hookspecs import hookimpl
from herd.hooks.types import ImageRoot, Layer, Tree
from herd.host import hostsnapshot
from herd.host.hostimage import OVERLAID, SHARED_READ_ONLY, host_top_level, layer_holds

DESCRIPTION = (
    "the host's own OS (the default), with the machine's `packages` in a cached layer over it: 'host'"
)


@hookimpl
def herd_image_kinds(offer: Callable[[str, str], None]) -> None:
    offer(HOST_IMAGE, DESCRIPTION)


@hookimpl
def herd_image_check(machine: MachineSpec, kind: str) -> list[tuple[str, str]] | None:
    if kind != HOST_IMAGE:
        return None
    from herd.host import packagelayer  # a run without packages needs none of it

    problems = []
    if machine.image != HOST_IMAGE:
        problems.append(("image", f"{machine.image!r}: the host image is 'host', with nothing after it"))
    if machine.packages and (problem := packagelayer.host_problem()) is not None:
        problems.append(("packages", problem))
    return problems


@hookimpl
def herd_image_resolve(
    machine: MachineSpec, kind: str, id_shift: int, progress: Callable[[str], None]
) -> ImageRoot | None:
    if kind != HOST_IMAGE:
        return None
    from herd.host import packagelayer

    layer = packagelayer.over_host(machine.packages, progress) if machine.packages else None
    return host_root(hostsnapshot.snapshot(id_shift), id_shift, layer, machine.packages)


def host_root(
    snapshot: Path, id_shift: int, packages: Path | None = None, names: Sequence[str] = ()
) -> ImageRoot:
    """The host image: the host's /usr and the like shared, /etc and /var from `snapshot` (made
    for `id_shift`), with the `packages` layer (of the packages `names`) above each where it holds
    something."""

    def stack(name: str, base: Layer) -> tuple[Layer, ...]:
        if packages is not None and layer_holds(packages, name):
            return (Layer(str(packages / name)), base)
        return (base,)

    top_level = host_top_level()
    shared = [name for name, link in top_level if link is None and name in SHARED_READ_ONLY]
    return ImageRoot(
        description=HOST_IMAGE if not names else f"{HOST_IMAGE} + {', '.join(names)}",
        top_level=tuple(
            (name, link) for name, link in top_level if link is not None or name in (*shared, *OVERLAID)
        ),
        shared=tuple(Tree(f"/{name}", stack(name, Layer(f"/{name}"))) for name in shared),
        overlaid=tuple(
            Tree(f"/{name}", stack(name, Layer(str(snapshot / name), id_shift))) for name in OVERLAID
        ),
    )
