"""What of the host's /etc and /var a machine on the `host` image sees: a cached, filtered copy.

A machine needs the host's packaged configuration, not its secrets or its state. The copy that
becomes the lower layer of a machine's /etc and /var holds:

- /etc, except every file that the host's other users may not read (`/etc/shadow`, ssh host keys,
  TLS private keys, an engine's key…), unless it is a conffile of a package that nobody changed
  (its content is then the package's, which anyone can download). /etc/shadow and /etc/gshadow are
  written anew from passwd and group, with every password locked.
- of /var, its top-level entries (empty) and what the host's packages ship beneath it (dpkg's file
  lists), files under the same rule as /etc: directories such as /var/lib/postgresql or /var/log/nginx
  with their owners, never what services wrote into them (databases, logs, container images, caches).

The copy is owned as a machine confined in a user namespace sees it (`herd.host.idmap`): one copy per id
shift, built once per state of the host's /etc and package database and shared by every machine of
every run. A change to /etc (a new file, an edit, a chmod) or an installed package makes a new one.
Copies are entries of herd's image cache (`herd.host.imagecache`, kind `host-snapshot`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from herd.host import imagecache
from herd.host.idmap import entries_below, shifted

KIND = "host-snapshot"  # its entries' kind in herd's image cache
DPKG = Path("/var/lib/dpkg")
# Part of every key: a change to what a copy holds makes every older copy stale.
FORMAT = b"host-image 1"
# A copy nobody has used for this long is removed when a new one is made.
UNUSED_FOR = 24 * 3600.0
GENERATED = ("shadow", "gshadow")


def _fingerprint(etc: str, dpkg: Path) -> str:
    digest = hashlib.sha256(FORMAT)
    for path, info in entries_below(etc):
        fields = (
            path,
            info.st_mode,
            info.st_uid,
            info.st_gid,
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
        )
        digest.update(repr(fields).encode())
    for database in (dpkg / "status", dpkg / "info"):
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(database)
            digest.update(repr((str(database), info.st_mtime_ns, info.st_size)).encode())
    return digest.hexdigest()[:20]


def packaged_conffiles(dpkg: Path = DPKG) -> dict[str, str]:
    """Every conffile dpkg knows, with the MD5 of the content its package shipped."""
    found: dict[str, str] = {}
    try:
        text = (dpkg / "status").read_text(errors="replace")
    except FileNotFoundError:
        return found
    in_conffiles = False
    for line in text.splitlines():
        if line.startswith("Conffiles:"):
            in_conffiles = True
        elif in_conffiles and line.startswith(" "):
            fields = line.split()
            if len(fields) >= 2:
                found[fields[0]] = fields[1]
        else:
            in_conffiles = False
    return found


def shipped_under(prefix: str, dpkg: Path = DPKG) -> list[str]:
    """The paths below `prefix` that the host's installed packages ship (dpkg's file lists)."""
    shipped: set[str] = set()
    with contextlib.suppress(FileNotFoundError), os.scandir(dpkg / "info") as entries:
        for entry in entries:
            if entry.name.endswith(".list"):
                with open(entry.path, errors="replace") as listing:
                    shipped.update(line.rstrip("\n") for line in listing if line.startswith(prefix + "/"))
    return sorted(shipped)


def _unchanged_conffile(path: str, name: str, conffiles: dict[str, str]) -> bool:
    shipped = conffiles.get(name)
    if shipped is None:
        return False
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read(), usedforsecurity=False).hexdigest() == shipped


def may_expose(path: str, info: os.stat_result, conffiles: dict[str, str], name: str | None = None) -> bool:
    """Whether a machine may see the file at `path` (`name` in its image, where that is not the
    host's own root): anyone on the host may read it, or its content is its package's own."""
    if info.st_mode & stat.S_IROTH:
        return True
    try:
        return _unchanged_conffile(path, name or path, conffiles)
    except FileNotFoundError:
        return False


def _copy(source: str, info: os.stat_result, target: Path, shift: int) -> None:
    """One directory (empty), link or regular file, with its mode, times and shifted owner; an
    entry that vanished since it was listed (or whose directory did) is left out."""
    with contextlib.suppress(FileNotFoundError):
        _copy_entry(source, info, target, shift)


def _copy_entry(source: str, info: os.stat_result, target: Path, shift: int) -> None:
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        target.mkdir(mode=0o700)
    elif stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(info.st_mode):
        shutil.copyfile(source, target, follow_symlinks=False)
    else:
        return  # sockets, FIFOs and device nodes are the host's, never a machine's
    os.chown(target, shifted(info.st_uid, shift), shifted(info.st_gid, shift), follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(target, mode)  # after chown, which clears set-id bits
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_etc(source: str, target: Path, shift: int, conffiles: dict[str, str]) -> None:
    _copy(source, os.lstat(source), target, shift)
    for path, info in entries_below(source):
        relative = os.path.relpath(path, source)
        if relative in GENERATED:
            continue
        if stat.S_ISREG(info.st_mode) and not may_expose(path, info, conffiles):
            continue
        _copy(path, info, target / relative, shift)
    write_locked_shadow(target, shift)


def write_locked_shadow(etc: Path, shift: int) -> None:
    """/etc/shadow and /etc/gshadow with an entry per user and group of the copy, none of which
    can log in with a password (root included: a test enters machines through herd)."""
    users = [line.split(":")[0] for line in _lines(etc / "passwd")]
    groups = [line.split(":") for line in _lines(etc / "group")]
    shadow_gid = next((int(fields[2]) for fields in groups if fields[0] == "shadow" and len(fields) > 2), 0)
    days = int(time.time() // 86400)
    contents = {
        "shadow": "".join(f"{user}:*:{days}:0:99999:7:::\n" for user in users),
        "gshadow": "".join(f"{fields[0]}:*::{fields[3] if len(fields) > 3 else ''}\n" for fields in groups),
    }
    for name, content in contents.items():
        path = etc / name
        path.write_text(content)
        os.chown(path, shifted(0, shift), shifted(shadow_gid, shift))
        os.chmod(path, 0o640)


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(errors="replace").splitlines() if line and ":" in line]
    except FileNotFoundError:
        return []


def _copy_var(source: str, target: Path, shift: int, conffiles: dict[str, str], dpkg: Path) -> None:
    _copy(source, os.lstat(source), target, shift)
    for path, info in _walk_top(source):
        _copy(path, info, target / os.path.basename(path), shift)
    for path in shipped_under(source, dpkg):
        destination = target / os.path.relpath(path, source)
        if destination.exists() or destination.is_symlink() or not destination.parent.is_dir():
            continue
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and not may_expose(path, info, conffiles):
            continue
        _copy(path, info, destination, shift)


def _walk_top(directory: str) -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            yield entry.path, entry.stat(follow_symlinks=False)


def build(target: Path, shift: int, etc: str = "/etc", var: str = "/var", dpkg: Path = DPKG) -> None:
    """Make the filtered copy of `etc` and `var` in `target` (new, or empty)."""
    conffiles = packaged_conffiles(dpkg)
    target.mkdir(exist_ok=True)
    _copy_etc(etc, target / "etc", shift, conffiles)
    _copy_var(var, target / "var", shift, conffiles, dpkg)


def snapshot(
    shift: int, cache: Path | None = None, etc: str = "/etc", var: str = "/var", dpkg: Path = DPKG
) -> Path:
    """The directory holding `etc` and `var` as a machine with root at host id `shift` sees them:
    made if the host changed since the last one, else reused; an entry of herd's image cache
    (`cache`, else the default one), held while this process lives. Making one removes the copies
    nobody used for `UNUSED_FOR` seconds."""
    made: list[Path] = []

    def make(target: Path) -> None:
        build(target, shift, etc, var, dpkg)
        made.append(target)

    cache = cache or imagecache.images_dir()
    description = f"the host's {etc} and {var} for machines whose root is host id {shift}"
    directory = imagecache.ensure(KIND, f"{_fingerprint(etc, dpkg)}-{shift}", description, make, root=cache)
    if made:
        imagecache.prune(UNUSED_FOR, kind=KIND, root=cache, keep=directory)
    return directory
