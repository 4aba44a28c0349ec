"""What the image tests share: a Debian root from herd's cache, a local Docker image made from it
(no registry), that image saved as `docker save` writes it, and a synthetic NixOS system.

The Debian root is built once per host with herd's own provider (a minute or two the first time)
and reused from the cache by every later session, as a user's runs reuse it.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.declare.spec import parse_test
from herd_images import debian
from tests.images import nixos_store

DOCKER_BASE = "herd-test/images-base"
DOCKER_IMAGE = "herd-test/images-oci"
MARKER = "/opt/herd-oci/marker"
# A layer over the Debian root that removes a file (a whiteout) and replaces a directory (opaque).
DOCKERFILE = f"""FROM {{base}}
RUN rm /etc/issue.net && rm -rf /usr/share/doc && mkdir /usr/share/doc \\
    && echo herd > /usr/share/doc/only && mkdir -p {os.path.dirname(MARKER)} && echo oci > {MARKER}
"""


def machine(image: object, name: str = "m") -> object:
    return parse_test("fixture", {name: {"image": image}}, "pass").machines[0]


@pytest.fixture(scope="session")
def debian_root() -> Path:
    """The root of `debian:bookworm`, built now unless herd's cache has it."""
    image = debian.resolve(machine("debian:bookworm"), "debian", lambda step: None)  # type: ignore[arg-type]
    etc = image.tree("/etc")
    assert etc is not None
    return Path(etc.layers[0].path).parent


def _tar_of(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(root, arcname=".")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def docker_image(debian_root: Path) -> str:
    """A local image: the Debian root imported into the engine, and a layer built over it."""
    import docker

    engine = docker.from_env()
    tag = f"{DOCKER_IMAGE}:{debian_root.parent.name[-16:]}"
    try:
        engine.images.get(tag)
    except docker.errors.ImageNotFound:
        base_tag = f"{DOCKER_BASE}:{debian_root.parent.name[-16:]}"
        repository, version = base_tag.split(":")
        engine.api.import_image_from_data(_tar_of(debian_root), repository=repository, tag=version)
        with tempfile.TemporaryDirectory() as context:
            Path(context, "Dockerfile").write_text(DOCKERFILE.format(base=base_tag))
            engine.images.build(path=context, tag=tag, network_mode="none", rm=True, forcerm=True)
    return tag


@pytest.fixture(scope="session")
def saved_image(docker_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local image as `docker save` writes it."""
    import docker

    path = tmp_path_factory.mktemp("saved") / "image.tar"
    with open(path, "wb") as archive:
        for chunk in docker.from_env().images.get(docker_image).save(named=True):
            archive.write(chunk)
    return path


@pytest.fixture
def synthetic_nixos(debian_root: Path) -> Iterator[Path]:
    """A NixOS-shaped system in /nix/store, removed afterwards."""
    made = nixos_store.make(debian_root, salt=str(os.getpid()))
    try:
        yield made.system
    finally:
        made.remove()
    assert not any(path.exists() for path in made.paths)
