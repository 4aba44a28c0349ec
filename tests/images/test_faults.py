"""Images that cannot be had fail the test before any machine boots, naming the test, the machine,
the field and the tool's own words; nothing half-built stays in the cache."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from herd import SpecError, Test
from herd.host import imagecache
from tests.images.layers import layer, member
from tests.images.test_ocifile import config, docker_archive, write_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds images and boots machines: needs root")


def failure(image: object, tmp_path: Path, **fields: object) -> str:
    """The error of a one-machine test of `image`, which must fail before its machine boots."""
    test = Test(name="faulty", machines={"m": {"image": image, **fields}}, script="m.succeed('true')")
    with pytest.raises(SpecError) as raised:
        test.run(backend="nspawn", output_dir=tmp_path / "out", terminal=None)
    assert not (tmp_path / "out" / "m" / "console.log").exists(), "the machine began to boot"
    return str(raised.value)


def test_an_unknown_suite_is_named_with_mmdebstraps_words(tmp_path: Path) -> None:
    error = failure("debian:bookwrom", tmp_path)
    assert "test 'faulty', machine 'm', field 'image'" in error
    assert "bookwrom Release' does not have a Release file" in error
    assert not list(imagecache.images_dir().glob("debian-bookwrom-*"))


def test_an_image_file_that_is_not_there_or_not_an_image(tmp_path: Path) -> None:
    assert "field 'image': /nonexistent/image.tar does not exist" in failure(
        "oci:/nonexistent/image.tar", tmp_path
    )
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(b"\x1f\x8b\x08" + os.urandom(4096))
    error = failure(f"oci:{corrupt}", tmp_path)
    assert "test 'faulty', machine 'm', field 'image'" in error
    assert "neither a directory nor a readable tar archive" in error


def test_a_truncated_layer_is_refused_and_leaves_no_entry(tmp_path: Path) -> None:
    files = docker_archive()
    files["0/layer.tar"] = files["0/layer.tar"][:700]
    path = write_tar(tmp_path / "truncated.tar", files)
    error = failure(f"oci:{path}", tmp_path)
    assert "field 'image'" in error and "layer 0/layer.tar" in error
    assert not list(imagecache.images_dir().glob(".build-oci-*"))


def test_an_image_without_systemd_is_refused_naming_the_machine(tmp_path: Path) -> None:
    files = docker_archive()  # /etc and /var, a shell, no systemd
    files["1/layer.tar"] = layer(member("var", tarfile.DIRTYPE), member("bin/sh", data=b"", mode=0o755))
    files["config.json"] = config((files["0/layer.tar"], files["1/layer.tar"]))
    error = failure(f"oci:{write_tar(tmp_path / 'nosystemd.tar', files)}", tmp_path)
    assert "machine 'm', field 'image'" in error and "has no systemd" in error


def test_a_docker_image_the_engine_lacks_is_never_pulled(tmp_path: Path) -> None:
    error = failure("docker:herd-test/no-such-image:1", tmp_path)
    assert "machine 'm', field 'image'" in error and "herd never pulls one" in error


def test_packages_go_only_where_herd_installs_them(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match="field 'packages': packages go over the host image and debian: images"
    ):
        Test(name="p", machines={"m": {"image": "oci:/x.tar", "packages": ["curl"]}}, script="pass").run(
            backend="nspawn", output_dir=tmp_path / "out", terminal=None
        )


def test_a_backend_that_cannot_boot_a_kind_says_so_before_boot(tmp_path: Path) -> None:
    test = Test(name="n", machines={"m": {"image": {"nixos": "/nix/store/x-nixos-system-m"}}}, script="pass")
    with pytest.raises(SpecError, match="backend 'docker' cannot boot images of kind 'nixos'"):
        test.run(backend="docker", output_dir=tmp_path / "out", terminal=None)
