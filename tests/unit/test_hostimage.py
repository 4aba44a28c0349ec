"""Where the host image puts a machine's declared files, and what its boot target pulls in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herd import HerdError
from herd.declare.spec import parse_test
from herd.hooks.types import ImageRoot, Layer, Overlay, Tree
from herd.host import hostimage


def test_files_under_top_level_links_land_in_the_machine_not_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for name, target in (("bin", "usr/bin"), ("snap", "/var/lib/snapd/snap"), ("loop", "/loop")):
        (root / name).symlink_to(target)
    layers = {"etc": tmp_path / "etc-upper", "var": tmp_path / "var-upper"}
    read_only = {"usr"}
    target = hostimage._layer_for("/snap/app/config", layers, read_only, root, "m")
    assert target == tmp_path / "var-upper" / "lib" / "snapd" / "snap" / "app" / "config"
    assert (
        hostimage._layer_for("/etc/app.conf", layers, read_only, root, "m")
        == tmp_path / "etc-upper" / "app.conf"
    )
    assert hostimage._layer_for("/srv/page", layers, read_only, root, "m") == root / "srv" / "page"
    with pytest.raises(HerdError, match="/bin/tool leads to /usr, which machines cannot write"):
        hostimage._layer_for("/bin/tool", layers, read_only, root, "m")
    with pytest.raises(HerdError, match="too many levels of links"):
        hostimage._layer_for("/loop/x", layers, read_only, root, "m")


def test_a_written_file_replaces_a_link_instead_of_following_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    link = tmp_path / "layer" / "file"
    link.parent.mkdir()
    link.symlink_to(outside)
    hostimage._write(link, "new", 0o600)
    assert outside.read_text() == "untouched"
    assert not link.is_symlink() and link.read_text() == "new" and link.stat().st_mode & 0o777 == 0o600


def test_the_boot_target_wants_multi_user_target_and_the_tests_units() -> None:
    spec = parse_test("t", {"m": {"services": ["web"], "units": {"job.service": "[Service]\n"}}}, "pass")
    [wants] = [
        line for line in hostimage.boot_target(spec.machines[0]).splitlines() if line.startswith("Wants=")
    ]
    assert wants.split("=", 1)[1].split() == [
        "network.target",
        "network-online.target",
        "multi-user.target",
        "web.service",
        "job.service",
    ]


def _vendor_units(usr: Path, names: tuple[str, ...]) -> None:
    wants = usr / "lib" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for name in names:
        (wants / name).symlink_to(f"../{name}")


def test_multi_user_target_pulls_in_none_of_the_images_vendor_wants_but_user_sessions(tmp_path: Path) -> None:
    """The image's packages, those of a layer of packages over it too, have multi-user.target want
    units; a machine starts none of them but the one that lets users log in."""
    _vendor_units(tmp_path / "usr", ("dbus.service", "getty.target", "systemd-user-sessions.service"))
    _vendor_units(tmp_path / "layer" / "usr", ("systemd-logind.service",))
    layers = (Layer(str(tmp_path / "layer" / "usr")), Layer(str(tmp_path / "usr")))
    image = ImageRoot("test", (), (Tree("/usr", layers),), ())
    units = tmp_path / "etc-upper" / "systemd" / "system"
    hostimage._mask_vendor_wants(
        units, hostimage.vendor_wants(image, "multi-user.target"), hostimage.MULTI_USER_KEPT
    )
    wants = units / "multi-user.target.wants"
    masked = {entry.name: os.readlink(entry) for entry in wants.iterdir()}
    assert masked == dict.fromkeys(("dbus.service", "getty.target", "systemd-logind.service"), "/dev/null")


@pytest.mark.skipif(os.geteuid() != 0, reason="opaque directories are trusted.* attributes: root's")
def test_a_root_of_layers_shares_one_layer_as_a_bind_and_stacks_the_rest(tmp_path: Path) -> None:
    """A shared tree of one layer of host ids is bound (its backend maps it), a stack is a
    read-only overlay, an overlaid tree gets the machine's upper layer; every layer but the host's
    own is seen through the view; the enabled units of every /etc layer are hidden."""
    for layer in ("layer", "snapshot"):
        (tmp_path / layer / "etc" / "systemd" / "system").mkdir(parents=True)
    (tmp_path / "layer" / "etc" / "systemd" / "system" / "sockets.target.wants").mkdir()
    (tmp_path / "snapshot" / "etc" / "systemd" / "system" / "multi-user.target.wants").mkdir()
    image = ImageRoot(
        "host + app",
        (("bin", "usr/bin"), ("etc", None), ("opt", None), ("usr", None)),
        (
            Tree("/usr", (Layer(str(tmp_path / "layer" / "usr")), Layer("/usr"))),
            Tree("/opt", (Layer("/opt"),)),
        ),
        (
            Tree(
                "/etc", (Layer(str(tmp_path / "layer" / "etc")), Layer(str(tmp_path / "snapshot" / "etc"), 7))
            ),
        ),
    )
    spec = parse_test("t", {"m": {}}, "pass").machines[0]
    state = tmp_path / "state"
    root = hostimage.prepare(
        spec, state, "", tmp_path / "journal", image=image, view=lambda layer: f"view-of:{layer.path}"
    )
    assert root.read_only_binds == (("/opt", "/opt"),)
    assert root.overlays == (
        Overlay((f"view-of:{tmp_path}/layer/usr", "view-of:/usr"), None, "/usr"),
        Overlay(
            (f"view-of:{tmp_path}/layer/etc", f"view-of:{tmp_path}/snapshot/etc"), state / "etc-upper", "/etc"
        ),
    )
    assert os.readlink(root.directory / "bin") == "usr/bin"
    assert {p.name for p in root.directory.iterdir()} >= {"bin", "etc", "opt", "usr", "root", "tmp"}
    units = state / "etc-upper" / "systemd" / "system"
    for hidden in ("sockets.target.wants", "multi-user.target.wants"):
        assert os.getxattr(units / hidden, "trusted.overlay.opaque") == b"y"
