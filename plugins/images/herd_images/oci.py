"""OCI images as machine roots: `"image": "oci:PATH"` (a file on disk) and `"image": "docker:NAME"`
(an image of the local Docker engine).

Either way the image is unpacked once, layer over layer with their whiteouts honoured
(`herd_images.unpack`), into a cached root keyed by the image's id: the same image saved to a file
and found in the engine is unpacked once. A `docker:` image whose id the cache has is not even
saved. Machines boot systemd, so an image without it is refused, naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from herd.plugin import HerdError, ImageError, ImageRoot, MachineSpec, imagecache
from herd_images import dockerengine, roots
from herd_images.ocifile import ImageFile, ImageFileError
from herd_images.unpack import LayerError, apply_layer

SAVED = "saved.tar"  # a `docker:` image's archive, in its cache entry while it is unpacked


def _value(machine: MachineSpec) -> str:
    return str(machine.image).partition(":")[2]


def check(machine: MachineSpec, kind: str) -> list[tuple[str, str]]:
    value = _value(machine)
    problems = []
    if machine.packages:  # an image's apt may name any address; herd asks the host's mirror only
        problems.append(("packages", f"packages go over the host image and debian: images, not {kind}: ones"))
    if kind == "oci":
        path = Path(value)
        if not path.is_absolute():
            problems.append(("image", f"{value!r}: name the image file by its absolute path"))
        elif not path.exists():
            problems.append(("image", f"{value} does not exist"))
        elif not os.access(path, os.R_OK):
            problems.append(("image", f"{value} is not readable"))
    return problems


def unpack(image: ImageFile, target: Path, progress: Callable[[str], None]) -> None:
    """Apply the image's layers, lowest first, into `target` (made here)."""
    target.mkdir()
    for number, layer in enumerate(image.layers, 1):
        progress(f"unpacking layer {number} of {len(image.layers)}")
        with image.open_layer(layer) as archive:
            apply_layer(archive, target)


def _root(
    image_id: str, description: str, fill: Callable[[Path], None], progress: Callable[[str], None]
) -> ImageRoot:
    key = image_id.removeprefix("sha256:")[:24]
    directory = imagecache.ensure("oci", key, description, fill, progress) / "root"
    roots.require_systemd(directory, description)
    return roots.image_root(directory, description)


def resolve(machine: MachineSpec, kind: str, progress: Callable[[str], None]) -> ImageRoot:
    value = _value(machine)
    description = f"{kind}:{value}"
    try:
        if kind == "docker":
            image_id = dockerengine.image_id(value)

            def from_engine(directory: Path) -> None:
                progress("saving the image from the Docker engine")
                dockerengine.save(value, directory / SAVED)
                with ImageFile(directory / SAVED) as image:
                    unpack(image, directory / "root", progress)
                (directory / SAVED).unlink()

            return _root(image_id, description, from_engine, progress)
        with ImageFile(Path(value)) as image:
            return _root(
                image.id, description, lambda directory: unpack(image, directory / "root", progress), progress
            )
    except ImageFileError as error:  # it names the file
        raise ImageError(str(error)) from None
    except LayerError as error:
        raise ImageError(f"{description}: {error}") from None
    except ImageError:
        raise
    except HerdError as error:
        raise ImageError(str(error)) from None
