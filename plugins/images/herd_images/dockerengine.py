"""Images of the local Docker engine, for `"image": "docker:NAME"`: looked up and saved, never pulled.

The engine is the one the docker SDK reaches from the environment. An image is known by its id (its
config's digest), which the engine tells at once: a cached root of that id is used without saving
anything. Otherwise the engine saves the image (`docker save`, a docker-archive) into a file, which
is unpacked as an `oci:` file is. The SDK (and requests) is imported on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from herd.plugin import HerdError

if TYPE_CHECKING:
    from docker import DockerClient

CHUNK = 1 << 20


def _client() -> DockerClient:
    try:
        import docker
    except ImportError:
        raise HerdError("docker: images need the docker SDK: pip install 'herd-images[docker]'") from None
    try:
        return docker.from_env()
    except docker.errors.DockerException as error:
        raise HerdError(
            f"docker: images come from the local Docker engine, which cannot be reached: {error}"
        ) from None


def image_id(name: str) -> str:
    """The id of the engine's image `name`; HerdError when the engine has none (nothing is pulled)."""
    import docker

    try:
        return str(_client().images.get(name).id)
    except docker.errors.ImageNotFound:
        raise HerdError(
            f"the local Docker engine has no image {name!r}, and herd never pulls one: build, load or "
            "import it into the engine first"
        ) from None
    except docker.errors.APIError as error:
        raise HerdError(f"the local Docker engine cannot give the image {name!r}: {error}") from None


def save(name: str, target: Path) -> None:
    """Write the engine's image `name` to `target` as `docker save` does."""
    import docker

    try:
        with open(target, "xb") as archive:
            for chunk in _client().images.get(name).save(chunk_size=CHUNK, named=False):
                archive.write(chunk)
    except docker.errors.APIError as error:
        raise HerdError(f"the local Docker engine cannot save the image {name!r}: {error}") from None
