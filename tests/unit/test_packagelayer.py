"""A layer of packages: its key, what it may carry, and apt's progress and errors as herd reports them."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from herd.host import packagelayer
from herd.host.packagelayer import Base

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="owners and trusted.* attributes: root's")


def _file(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _image(root: Path) -> Base:
    _file(root / "var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\n")
    _file(root / "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    _file(root / "etc/group", "root:x:0:\nshadow:x:42:\n")
    _file(root / "etc/apt/sources.list.d/debian.sources", "Types: deb\nURIs: http://deb.debian.org/debian\n")
    return Base(str(root), ("etc", "usr", "var"), "test image")


def test_the_key_holds_everything_the_layer_depends_on_and_nothing_else(tmp_path: Path) -> None:
    base = _image(tmp_path)
    key = packagelayer.layer_key(base, ["redis-server", "curl"])
    assert packagelayer.layer_key(base, ["curl", "redis-server"]) == key  # the list, sorted
    assert packagelayer.layer_key(base, ["curl"]) != key
    assert packagelayer.layer_key(replace(base, directories=("etc", "usr")), ["curl", "redis-server"]) != key
    assert packagelayer.layer_key(replace(base, key="another base"), ["curl", "redis-server"]) != key
    changes = (
        ("var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\n\nPackage: vim\n"),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n"),
        ("etc/apt/sources.list.d/extra.list", "deb http://example.org/debian bookworm main\n"),
        ("etc/apt/preferences", "Package: *\nPin: release n=bookworm\nPin-Priority: 900\n"),
    )
    for relative, content in changes:
        _file(tmp_path / relative, content)
        changed = packagelayer.layer_key(base, ["curl", "redis-server"])
        assert changed != key, relative
        key = changed
    _file(tmp_path / "etc/hostname", "elsewhere\n")  # nothing a layer depends on
    assert packagelayer.layer_key(base, ["curl", "redis-server"]) == key


@ROOT_ONLY
def test_the_layer_keeps_what_the_packages_add_and_none_of_the_images_secrets_logs_or_caches(
    tmp_path: Path,
) -> None:
    base, layer = tmp_path / "image", tmp_path / "layer"
    _image(base)
    _file(base / "etc/shadow", "root:$y$secret-hash:19000:0:99999:7:::\n", 0o640)
    _file(base / "var/log/dpkg.log", "the image's own history\n")
    _file(base / "var/cache/man/index.db", "the image's index\n")
    # what an installation that adds the user 'app' leaves in the overlays' upper directories:
    _file(layer / "etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp:x:100:101::/var/lib/app:/bin/false\n")
    _file(layer / "etc/shadow", "root:$y$secret-hash:19000:0:99999:7:::\napp:!:19000::::::\n", 0o640)
    _file(layer / "etc/app/secret.conf", "the package's own\n", 0o640)
    _file(layer / "var/log/dpkg.log", "the image's own history\ninstall app\n")
    _file(layer / "var/log/app/.keep", "")
    _file(layer / "var/cache/man/index.db", "the image's index, and app's pages\n")
    _file(layer / "var/lib/dpkg/status", "Package: base-files\n\nPackage: app\n")
    packagelayer._take_out_image_files(base, layer)
    assert (layer / "etc/app/secret.conf").read_text() == "the package's own\n"  # new: the layer's
    assert (layer / "var/log/app/.keep").exists() and (layer / "var/lib/dpkg/status").exists()
    assert not (layer / "var/log/dpkg.log").exists() and not (layer / "var/cache").exists()
    shadow = (layer / "etc/shadow").read_text()
    assert "secret-hash" not in shadow and shadow.startswith("root:*:") and "\napp:*:" in shadow
    assert (layer / "etc/group").read_text() == (base / "etc/group").read_text()  # for gshadow


@ROOT_ONLY
def test_overlayfs_attributes_go_but_whiteouts_and_opaque_directories_stay(tmp_path: Path) -> None:
    copied = _file(tmp_path / "usr/bin/tool", "x")
    os.setxattr(copied, "trusted.overlay.origin", b"\0\1")
    os.setxattr(tmp_path / "usr", "trusted.overlay.opaque", b"y")
    os.setxattr(tmp_path / "usr", "user.kept", b"mine")
    packagelayer._strip_overlay_attributes(tmp_path)
    assert os.listxattr(copied) == []
    assert sorted(os.listxattr(tmp_path / "usr")) == ["trusted.overlay.opaque", "user.kept"]


def test_apts_status_lines_become_steps_and_its_errors_the_message() -> None:
    reading, writing = os.pipe()
    lines = (
        "dlstatus:1:0.0000:Retrieving file 1 of 2\n"
        "pmstatus:libcjson1:amd64:12.5000:Unpacking libcjson1 (amd64)\n"
        "pmerror:/var/cache/apt/archives/app.deb:50:trying to overwrite '/usr/bin/x'\n"
        "something else\n"
    )
    writer = threading.Thread(target=lambda: (os.write(writing, lines.encode()), os.close(writing)))
    writer.start()
    steps: list[str] = []
    errors: list[str] = []
    packagelayer._follow(reading, steps.append, errors)
    writer.join()
    os.close(reading)
    assert steps == ["downloading: retrieving file 1 of 2 (0%)", "Unpacking libcjson1 (amd64) (12%)"]
    assert errors == ["trying to overwrite '/usr/bin/x'"]
    output = "Reading package lists...\nE: Unable to locate package herd-nope\n"
    assert packagelayer._failure(["herd-nope"], output, []) == (
        "apt-get install herd-nope failed: E: Unable to locate package herd-nope"
    )
