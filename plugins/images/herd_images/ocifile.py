"""An image on disk, as `docker save` writes it or as the OCI image layout lays it out: its id and
its layers, in order.

Two formats, each as a directory or as a tar archive of one:

- an OCI image layout: `oci-layout`, `index.json` naming the image's manifest (or an index of
  manifests, one per platform), and the blobs under `blobs/<algorithm>/<hex>`;
- a docker-archive (`docker save`): `manifest.json`, a list with one entry per image naming its
  config file and its layer archives.

The image's id is its config's digest (what `docker images` shows), so the same image saved twice,
or saved and laid out, has one id. Every layer is checked against the digest the config records for
its uncompressed content (`rootfs.diff_ids`): a damaged file is refused, never half unpacked.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import platform
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DOCKER_MANIFEST = "manifest.json"
OCI_INDEX = "index.json"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}
CHUNK = 1 << 20


class ImageFileError(Exception):
    """What is wrong with an image file: the message names what was expected."""


class _Directory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        with open(self.path / name, "rb") as handle:
            yield handle

    def close(self) -> None:
        pass


class _Archive:
    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed by `close`)
            self.members = {_normal(m.name): m for m in self.tar.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise ImageFileError(
                f"{path} is neither a directory nor a readable tar archive: {error}"
            ) from None

    def has(self, name: str) -> bool:
        return name in self.members

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        member = self.tar.extractfile(self.members[name])
        assert member is not None
        with member:
            yield member

    def close(self) -> None:
        self.tar.close()


def _normal(name: str) -> str:
    return os.path.normpath(name).lstrip("/")


@dataclass(frozen=True)
class Layer:
    name: str  # its file inside the image file
    diff_id: str  # the digest of its uncompressed content, from the config


class ImageFile:
    """An opened image file: `id` and `layers`; `open_layer` reads one. Close it after use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self._source: _Directory | _Archive = _Directory(path)
        elif path.exists():
            self._source = _Archive(path)
        else:
            raise ImageFileError(f"{path} does not exist")
        try:
            config_name, layer_names = self._locate()
            config = self._json(config_name)
            diff_ids = config.get("rootfs", {}).get("diff_ids", [])
            if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
                raise ImageFileError(
                    f"{path}: its config lists {len(diff_ids)} layers and its manifest {len(layer_names)}"
                )
            with self._source.open(config_name) as handle:
                self.id = "sha256:" + _sha256(handle)
            self.layers = tuple(
                Layer(name, str(diff)) for name, diff in zip(layer_names, diff_ids, strict=True)
            )
        except BaseException:
            self._source.close()
            raise

    def __enter__(self) -> ImageFile:
        return self

    def __exit__(self, *_: object) -> None:
        self._source.close()

    def _json(self, name: str) -> Any:
        if not self._source.has(name):
            raise ImageFileError(f"{self.path} lacks {name}")
        try:
            with self._source.open(name) as handle:
                return json.load(handle)
        except (ValueError, tarfile.TarError, OSError) as error:
            raise ImageFileError(f"{self.path}: {name} is not readable JSON: {error}") from None

    def _locate(self) -> tuple[str, list[str]]:
        """The config's file and the layers' files, in order (the lowest first)."""
        if self._source.has(OCI_INDEX):
            return self._oci_manifest(self._json(OCI_INDEX), OCI_INDEX)
        if self._source.has(DOCKER_MANIFEST):
            entries = self._json(DOCKER_MANIFEST)
            if not isinstance(entries, list) or len(entries) != 1:
                count = len(entries) if isinstance(entries, list) else "no list of"
                raise ImageFileError(f"{self.path}: {DOCKER_MANIFEST} holds {count} images, herd takes one")
            entry = entries[0]
            return _normal(entry["Config"]), [_normal(layer) for layer in entry["Layers"]]
        raise ImageFileError(
            f"{self.path} is neither an OCI image layout (no {OCI_INDEX}) nor a docker-archive "
            f"(no {DOCKER_MANIFEST}, as `docker save` writes)"
        )

    def _oci_manifest(self, index: Any, where: str) -> tuple[str, list[str]]:
        manifests = [m for m in index.get("manifests", []) if _fits_this_host(m)]
        if len(manifests) != 1:
            raise ImageFileError(
                f"{self.path}: {where} names {len(manifests)} images for this host's platform, herd takes one"
            )
        descriptor = manifests[0]
        name = _blob(descriptor["digest"])
        if descriptor.get("mediaType") in INDEX_TYPES:
            return self._oci_manifest(self._json(name), name)
        manifest = self._json(name)
        layers = []
        for layer in manifest.get("layers", []):
            media = str(layer.get("mediaType", ""))
            if "zstd" in media:  # Python reads gzip, xz and bzip2 (found by their magic numbers)
                raise ImageFileError(
                    f"{self.path}: layer {layer['digest']} is {media}, which herd cannot read"
                )
            layers.append(_blob(layer["digest"]))
        return _blob(manifest["config"]["digest"]), layers

    @contextlib.contextmanager
    def open_layer(self, layer: Layer) -> Iterator[IO[bytes]]:
        """The layer's archive, checked against its digest first."""
        if not self._source.has(layer.name):
            raise ImageFileError(f"{self.path} lacks its layer {layer.name}")
        with self._source.open(layer.name) as handle:
            try:
                digest = "sha256:" + _sha256(_uncompressed(handle))
            except ImageFileError as error:
                raise ImageFileError(f"{self.path}: layer {layer.name}: {error}") from None
            if digest != layer.diff_id:
                raise ImageFileError(
                    f"{self.path}: layer {layer.name} is damaged (its digest is not {layer.diff_id})"
                )
            handle.seek(0)
            yield handle


def _blob(digest: str) -> str:
    algorithm, _, hexadecimal = digest.partition(":")
    if not hexadecimal or "/" in digest:
        raise ImageFileError(f"not a digest: {digest!r}")
    return f"blobs/{algorithm}/{hexadecimal}"


def _fits_this_host(descriptor: Any) -> bool:
    wanted = descriptor.get("platform")
    if not wanted:
        return True
    architecture = ARCHITECTURES.get(platform.machine(), platform.machine())
    return bool(wanted.get("os") == "linux" and wanted.get("architecture") == architecture)


def _uncompressed(handle: IO[bytes]) -> IO[bytes]:
    """The layer's tar stream: the file itself, or its decompression."""
    magic = handle.read(6)
    handle.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(handle)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(handle)
    return handle


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    try:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as error:
        raise ImageFileError(f"cannot read it whole: {error}") from None
    return digest.hexdigest()
