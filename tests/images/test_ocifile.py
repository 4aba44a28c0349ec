"""Image files read as `docker save` writes them and as the OCI image layout lays them out."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from herd_images.ocifile import ImageFile, ImageFileError
from tests.images.layers import layer, member

LAYERS = (
    layer(member("etc", tarfile.DIRTYPE), member("etc/motd", data=b"hello\n")),
    layer(member("etc/.wh.motd"), member("etc/issue", data=b"herd\n")),
)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config(layers: tuple[bytes, ...] = LAYERS) -> bytes:
    return json.dumps({"rootfs": {"type": "layers", "diff_ids": [digest(data) for data in layers]}}).encode()


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def docker_archive(layers: tuple[bytes, ...] = LAYERS) -> dict[str, bytes]:
    names = [f"{index}/layer.tar" for index in range(len(layers))]
    manifest = [{"Config": "config.json", "RepoTags": ["t:1"], "Layers": names}]
    return {
        "manifest.json": json.dumps(manifest).encode(),
        "config.json": config(),
        **dict(zip(names, layers, strict=True)),
    }


def oci_layout(directory: Path) -> Path:
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        (blobs / digest(data).removeprefix("sha256:")).write_bytes(data)
        return {"digest": digest(data), "size": len(data)}

    import gzip

    layers = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(gzip.compress(d))} for d in LAYERS
    ]
    manifest = json.dumps({"schemaVersion": 2, "config": blob(config()), "layers": layers}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "platform": {"os": "linux", "architecture": "amd64"},
                                                **blob(manifest)}]}  # fmt: skip
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return directory


def read_layers(image: ImageFile) -> list[bytes]:
    contents = []
    for entry in image.layers:
        with image.open_layer(entry) as handle:
            contents.append(handle.read())
    return contents


def test_a_docker_archive_and_an_oci_layout_of_one_image_have_one_id(tmp_path: Path) -> None:
    with ImageFile(write_tar(tmp_path / "saved.tar", docker_archive())) as saved:
        assert saved.id == digest(config())
        assert read_layers(saved) == list(LAYERS)
    with ImageFile(oci_layout(tmp_path / "layout")) as laid_out:
        assert laid_out.id == digest(config())
        assert len(laid_out.layers) == 2
        read_layers(laid_out)  # gzip-compressed blobs, checked against their uncompressed digests


def test_a_damaged_layer_is_refused(tmp_path: Path) -> None:
    files = docker_archive()
    damaged = bytearray(LAYERS[1])
    damaged[600] ^= 0xFF  # in the content of its first file
    files["1/layer.tar"] = bytes(damaged)
    with (
        ImageFile(write_tar(tmp_path / "saved.tar", files)) as image,
        pytest.raises(ImageFileError, match="damaged"),
    ):
        read_layers(image)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a tar archive at all", "neither a directory nor a readable tar archive"),
        ({"hello.txt": b"hi"}, "neither an OCI image layout .* nor a docker-archive"),
        ({"manifest.json": b"[{"}, "not readable JSON"),
        ({"manifest.json": b"[]"}, "holds 0 images"),
    ],
)
def test_what_is_no_image_file_is_named(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "image.tar"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        write_tar(path, content)
    with pytest.raises(ImageFileError, match=message):
        ImageFile(path)
