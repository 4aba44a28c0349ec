"""Layers applied one over the other: whiteouts, opaque directories, links followed inside the image."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from herd_images.unpack import LayerError, apply_layer
from tests.images.layers import layer, member

DIR, SYM, LNK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def apply(root: Path, data: bytes) -> None:
    apply_layer(io.BytesIO(data), root)


def test_whiteouts_and_opaque_directories_hide_only_the_layers_below(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply(root, layer(
        member("a", DIR), member("a/gone", data=b"1"), member("a/kept", data=b"2"),
        member("b", DIR), member("b/old", data=b"3"), member("b/sub", DIR), member("b/sub/deep", data=b"4"),
        member("usr", DIR), member("usr/lib", DIR), member("lib", SYM, linkname="usr/lib"),
    ))  # fmt: skip
    apply(root, layer(
        member("a/.wh.gone"),
        member("b", DIR, mode=0o700), member("b/.wh..wh..opq"), member("b/new", data=b"5"),
        member("lib/through", data=b"6"),
        compression="gz",
    ))  # fmt: skip
    assert sorted(os.listdir(root / "a")) == ["kept"]
    assert sorted(os.listdir(root / "b")) == ["new"]  # the layer's own entry survives its opaque marker
    assert stat.S_IMODE((root / "b").stat().st_mode) == 0o700
    assert (root / "usr/lib/through").read_bytes() == b"6"  # through the image's own link
    assert (root / "lib").is_symlink()


def test_owners_modes_and_hard_links_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply(root, layer(
        member("bin", DIR), member("bin/ping", data=b"x", mode=0o4755, uid=0, gid=0),
        member("home", DIR), member("home/user", DIR, uid=1000, gid=1000, mode=0o700),
        member("bin/ping6", LNK, linkname="bin/ping"),
    ))  # fmt: skip
    assert stat.S_IMODE((root / "bin/ping").stat().st_mode) == 0o4755
    info = (root / "home/user").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1000, 0o700)
    assert (root / "bin/ping6").stat().st_ino == (root / "bin/ping").stat().st_ino
    assert (root / "bin/ping").stat().st_mtime == 1_700_000_000


def test_no_member_writes_outside_the_image(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    apply(
        root, layer(member("escape", SYM, linkname=str(outside)), member("up", SYM, linkname="../../outside"))
    )
    apply(root, layer(member("escape/planted", data=b"x"), member("up/planted", data=b"y")))
    assert list(outside.iterdir()) == []
    # an absolute link leads to the image's root, as inside the machine
    assert (root / outside.relative_to("/") / "planted").read_bytes() == b"x"
    assert (root / "outside" / "planted").read_bytes() == b"y"
    with pytest.raises(LayerError, match="leads out of the image"):
        apply(root, layer(member("../planted", data=b"z")))
    assert not (tmp_path / "planted").exists()


def test_a_damaged_archive_is_refused(tmp_path: Path) -> None:
    data = layer(member("a", data=b"x" * 4096), compression="gz")
    with pytest.raises(LayerError, match="not a readable layer archive"):
        apply(tmp_path, data[: len(data) // 2])
