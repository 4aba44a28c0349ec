"""Where the host image puts a machine's declared files, and what its boot target pulls in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herd import HerdError
from herd.declare.spec import parse_test
from herd.host import hostimage


@pytest.fixture
def host_links(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = (
        ("bin", "usr/bin"),
        ("etc", None),
        ("snap", "/var/lib/snapd/snap"),
        ("loop", "/loop"),
        ("var", None),
    )
    monkeypatch.setattr(hostimage, "host_top_level", lambda: entries)


def test_files_under_top_level_links_land_in_the_machine_not_on_the_host(
    host_links: None, tmp_path: Path
) -> None:
    layers = {"etc": tmp_path / "etc-upper", "var": tmp_path / "var-upper"}
    target = hostimage._layer_for("/snap/app/config", layers, tmp_path / "root", "m")
    assert target == tmp_path / "var-upper" / "lib" / "snapd" / "snap" / "app" / "config"
    assert (
        hostimage._layer_for("/etc/app.conf", layers, tmp_path / "root", "m")
        == tmp_path / "etc-upper" / "app.conf"
    )
    assert (
        hostimage._layer_for("/srv/page", layers, tmp_path / "root", "m")
        == tmp_path / "root" / "srv" / "page"
    )
    with pytest.raises(HerdError, match="/bin/tool leads to /usr, which machines cannot write"):
        hostimage._layer_for("/bin/tool", layers, tmp_path / "root", "m")
    with pytest.raises(HerdError, match="too many levels of links"):
        hostimage._layer_for("/loop/x", layers, tmp_path / "root", "m")


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


def test_multi_user_target_pulls_in_none_of_the_hosts_vendor_wants_but_user_sessions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    vendor = tmp_path / "usr-lib-systemd-system"
    (vendor / "multi-user.target.wants").mkdir(parents=True)
    for name in ("dbus.service", "getty.target", "systemd-logind.service", "systemd-user-sessions.service"):
        (vendor / "multi-user.target.wants" / name).symlink_to(f"../{name}")
    monkeypatch.setattr(hostimage, "VENDOR_UNIT_DIRS", (vendor, tmp_path / "absent"))
    hostimage.vendor_wants.cache_clear()
    units = tmp_path / "etc-upper" / "systemd" / "system"
    try:
        hostimage._mask_vendor_wants(units, "multi-user.target", hostimage.MULTI_USER_KEPT)
    finally:
        hostimage.vendor_wants.cache_clear()
    wants = units / "multi-user.target.wants"
    masked = {entry.name: os.readlink(entry) for entry in wants.iterdir()}
    assert masked == dict.fromkeys(("dbus.service", "getty.target", "systemd-logind.service"), "/dev/null")
