"""The images machines boot: herd's base image for the host's OS, or a local image a user names.

Host image. Docker runs containers from images, not from directories, so herd imports one image
that holds the top-level links of a prepared machine root (the host's `bin -> usr/bin` and the
like). Everything else is mounted over it when a machine starts (/usr read-only, /etc and /var as
overlays, the root's own directories), and the engine makes the mount points. The image is
imported with `docker import` from a tar stream made here (no registry, nothing pulled), tagged by
a digest of what it holds, and reused by every run while the host's top level stays the same:
runs never make images of their own.

A user's image (the `image` option): a local image with systemd. Its /usr and the rest come from
the image; its /etc and /var are the lower layers of the machine's overlays, as the host's are
for the host image, so herd's per-machine layers apply unchanged and keep what a machine wrote
across its reboots. The engine cannot give a host path to an image's directories, so herd copies
them out once per image (`docker cp`, from a container created and removed at once) into
/var/cache/herd/docker/<image id>, which later runs reuse.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from herd.plugin import HerdError, shift_owners
from herd_docker import engine

REPOSITORY = "herd/host-root"
IMAGE_LABEL = "herd.image"
EXPORTS = Path("/var/cache/herd/docker")
# Serialises imports and exports between boots of one process and between herd processes, so
# that two runs never import the same tag twice (which would leave the first image untagged).
LOCK_FILE = Path("/run/lock/herd-docker-image.lock")

_lock = threading.Lock()
_present: set[str] = set()  # tags this process has seen in the engine


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _lock:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _links(root: Path) -> list[tuple[str, str]]:
    """(name, target) of each top-level link of `root`."""
    return sorted((e.name, os.readlink(e.path)) for e in os.scandir(root) if e.is_symlink())


def _tar(links: list[tuple[str, str]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            archive.addfile(info)
    return buffer.getvalue()


def tag_for(root: Path) -> str:
    """The image that fits `root`'s top-level links: `herd/host-root:<digest>`."""
    digest = hashlib.sha256(repr(_links(root)).encode()).hexdigest()[:16]
    return f"{REPOSITORY}:{digest}"


def ensure(root: Path) -> str:
    """The base image for machines whose root is `root`, imported if the engine lacks it."""
    import docker

    tag = tag_for(root)
    if tag in _present:
        return tag
    with _locked():
        try:
            engine.client().images.get(tag)
        except docker.errors.ImageNotFound:
            repository, version = tag.split(":")
            engine.client().api.import_image_from_data(
                _tar(_links(root)),
                repository=repository,
                tag=version,
                changes=[f"LABEL {IMAGE_LABEL}=host-root"],
            )
        _present.add(tag)
    return tag


def local_id(name: str) -> str:
    """The id of the engine's image `name`; nothing is ever pulled, so a missing one is an error."""
    import docker

    try:
        return str(engine.client().images.get(name).id)
    except docker.errors.ImageNotFound:
        raise HerdError(
            f"the Docker engine has no image {name!r}, and herd never pulls one: build, load or "
            "import it into the local engine first"
        ) from None


def exported(name: str, directories: tuple[str, ...], run_id: str, shift: int = 0) -> Path:
    """A host copy of `directories` of the image `name` (its /etc and /var), made once per image
    and owned as a machine whose root is host id `shift` sees it (`herd.host.idmap.shift_owners`).

    The container they are copied from carries the run's label, so that the reaper removes it
    should the run die meanwhile.
    """
    import docker

    image_id = local_id(name)
    target = EXPORTS / (image_id.removeprefix("sha256:")[:16] + (f"-{shift}" if shift else ""))
    if target.is_dir():
        return target
    with _locked():
        if target.is_dir():
            return target
        EXPORTS.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=EXPORTS, prefix=".export-"))
        api = engine.client().api
        container = api.create_container(
            image_id, entrypoint=["/bin/sh"], labels={engine.RUN_LABEL: run_id}, network_disabled=True
        )["Id"]
        try:
            for directory in directories:
                try:
                    stream, _ = api.get_archive(container, f"/{directory}")
                except docker.errors.NotFound:
                    raise HerdError(
                        f"the image {name!r} has no /{directory}: machines boot images of a whole "
                        "operating system, with systemd"
                    ) from None
                with tempfile.TemporaryFile(dir=EXPORTS) as copy:
                    for chunk in stream:
                        copy.write(chunk)
                    copy.seek(0)
                    with tarfile.open(fileobj=copy) as archive:
                        archive.extractall(staging, numeric_owner=True, filter="fully_trusted")
            for directory in directories:
                shift_owners(staging / directory, shift)
            staging.rename(target)
        finally:
            api.remove_container(container, force=True)
            shutil.rmtree(staging, ignore_errors=True)
    return target
