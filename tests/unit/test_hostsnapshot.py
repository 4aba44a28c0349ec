"""The host image's copy of /etc and /var: what a machine may see of the host, and when it is made."""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import os
from pathlib import Path

from herd.host import hostsnapshot, imagecache


def _file(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _host(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A small host: /etc with a secret, a changed and an unchanged private conffile; /var with a
    package's files and a service's state; dpkg's status and file lists."""
    etc, var, dpkg = tmp_path / "etc", tmp_path / "var", tmp_path / "dpkg"
    _file(etc / "passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    _file(etc / "group", "root:x:0:\nshadow:x:42:\nusers:x:100:alice,bob\n")
    _file(etc / "shadow", "root:$y$secret-hash:19000:0:99999:7:::\n", 0o640)
    _file(etc / "ssh" / "ssh_host_ed25519_key", "PRIVATE KEY", 0o600)
    _file(etc / "ssh" / "ssh_host_ed25519_key.pub", "public key")
    pristine = _file(etc / "app" / "pristine.conf", "as packaged\n", 0o600)
    changed = _file(etc / "app" / "changed.conf", "password=hunter2\n", 0o600)
    os.symlink("pristine.conf", etc / "app" / "link.conf")
    md5 = hashlib.md5(b"as packaged\n", usedforsecurity=False).hexdigest()
    _file(
        dpkg / "status",
        "Package: app\nStatus: install ok installed\nConffiles:\n"
        f" {pristine} {md5}\n {changed} {md5}\nDescription: an app\n",
    )
    _file(var / "lib" / "app" / "shipped.dat", "from the package\n")
    _file(var / "lib" / "app" / "database", "rows a service wrote\n")
    _file(var / "log" / "app.log", "what happened on the host\n")
    os.symlink("/run", var / "run")
    (var / "cache").mkdir()
    lines = [str(var / "lib"), str(var / "lib" / "app"), str(var / "lib" / "app" / "shipped.dat")]
    _file(dpkg / "info" / "app.list", "\n".join(lines) + "\n")
    return etc, var, dpkg


def test_secrets_are_left_out_and_packaged_configuration_kept(tmp_path: Path) -> None:
    etc, var, dpkg = _host(tmp_path)
    hostsnapshot.build(tmp_path / "copy", 0, str(etc), str(var), dpkg)
    copy = tmp_path / "copy" / "etc"
    assert (copy / "passwd").read_text() == (etc / "passwd").read_text()
    assert (copy / "ssh" / "ssh_host_ed25519_key.pub").exists()
    assert not (copy / "ssh" / "ssh_host_ed25519_key").exists()
    assert (copy / "app" / "pristine.conf").read_text() == "as packaged\n"
    assert (copy / "app" / "pristine.conf").stat().st_mode & 0o777 == 0o600
    assert not (copy / "app" / "changed.conf").exists()
    assert os.readlink(copy / "app" / "link.conf") == "pristine.conf"


def test_shadow_is_written_anew_with_every_password_locked(tmp_path: Path) -> None:
    etc, var, dpkg = _host(tmp_path)
    hostsnapshot.build(tmp_path / "copy", 0, str(etc), str(var), dpkg)
    shadow = (tmp_path / "copy" / "etc" / "shadow").read_text()
    assert "secret-hash" not in shadow
    assert [line.split(":")[:2] for line in shadow.splitlines()] == [["root", "*"], ["alice", "*"]]
    assert (tmp_path / "copy" / "etc" / "shadow").stat().st_mode & 0o777 == 0o640
    gshadow = (tmp_path / "copy" / "etc" / "gshadow").read_text()
    assert gshadow.splitlines() == ["root:*::", "shadow:*::", "users:*::alice,bob"]


def test_var_holds_what_packages_ship_and_no_state(tmp_path: Path) -> None:
    etc, var, dpkg = _host(tmp_path)
    hostsnapshot.build(tmp_path / "copy", 0, str(etc), str(var), dpkg)
    copy = tmp_path / "copy" / "var"
    assert (copy / "lib" / "app" / "shipped.dat").read_text() == "from the package\n"
    assert not (copy / "lib" / "app" / "database").exists()
    assert sorted(os.listdir(copy)) == ["cache", "lib", "log", "run"]
    assert os.listdir(copy / "log") == [] and os.listdir(copy / "cache") == []
    assert os.readlink(copy / "run") == "/run"


def test_a_copy_is_reused_until_the_host_changes(tmp_path: Path) -> None:
    etc, var, dpkg = _host(tmp_path)
    cache = tmp_path / "cache"
    first = hostsnapshot.snapshot(0, cache, str(etc), str(var), dpkg)
    assert hostsnapshot.snapshot(0, cache, str(etc), str(var), dpkg) == first
    (etc / "passwd").write_text((etc / "passwd").read_text() + "bob:x:1001:1001::/home/bob:/bin/sh\n")
    second = hostsnapshot.snapshot(0, cache, str(etc), str(var), dpkg)
    assert second != first
    assert "bob" in (second / "etc" / "shadow").read_text()
    made = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    assert made == sorted([first.name, second.name])
    assert not list(cache.glob(".build-*"))  # no build left


def _snapshot_by_another_process(cache: Path, etc: Path, var: Path, dpkg: Path) -> Path:
    """A copy made by a process that has exited since: nobody holds it any more."""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(hostsnapshot.snapshot, 0, cache, str(etc), str(var), dpkg).result()


def test_unused_copies_are_pruned_but_never_one_in_use(tmp_path: Path) -> None:
    etc, var, dpkg = _host(tmp_path)
    cache = tmp_path / "cache"
    unused = _snapshot_by_another_process(cache, etc, var, dpkg)
    os.utime(unused / imagecache.ENTRY_FILE, (0, 0))
    _file(etc / "new.conf", "x")
    held = hostsnapshot.snapshot(0, cache, str(etc), str(var), dpkg)  # this process uses it
    os.utime(held / imagecache.ENTRY_FILE, (0, 0))
    _file(etc / "newer.conf", "x")
    new = hostsnapshot.snapshot(0, cache, str(etc), str(var), dpkg)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted(
        [held.name, new.name]
    )


def test_files_that_vanish_during_the_copy_are_left_out(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The host's package manager may remove a file between the listing of /etc and its copy."""
    etc, var, dpkg = _host(tmp_path)
    doomed = _file(etc / "app" / "doomed.conf-dpkg-new", "short-lived\n")
    listed = list(hostsnapshot.entries_below(str(etc)))
    doomed.unlink()
    (etc / "app" / "pristine.conf").unlink()
    monkeypatch.setattr(hostsnapshot, "entries_below", lambda directory: iter(listed))
    hostsnapshot.build(tmp_path / "copy", 0, str(etc), str(var), dpkg)
    copy = tmp_path / "copy" / "etc" / "app"
    assert sorted(os.listdir(copy)) == ["link.conf"]
