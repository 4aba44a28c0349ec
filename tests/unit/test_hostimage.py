"""Where the host image puts a machine's declared files."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd import HerdError, hostimage


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
