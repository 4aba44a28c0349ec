"""Image layers (tar archives) applied one over the other into a directory, as a container engine does.

Each layer is a tar archive of the files it adds or changes, with two kinds of marker for what it
removes (the OCI image specification's whiteouts, which Docker's layers use too): an empty file
`.wh.NAME` deletes NAME of the layers below, and `.wh..wh..opq` in a directory hides everything the
layers below have in it (it is opaque). A layer's whiteouts act on the layers below only, never on
what the same layer adds, so they are applied before its files are written.

The archive's paths are the image's: they are resolved inside the target directory, following the
image's own links as the image would see them (an absolute link leads to the target's root, never the
host's), so no member can write outside the target. Owners, modes (set-id bits included), times,
hard links, device nodes and FIFOs are kept as the archive has them.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINKS = 40  # links followed while resolving one path, as the kernel's own limit


class LayerError(Exception):
    """A layer that cannot be applied: a corrupt archive, or a member that leaves the image."""


def _parts(name: str) -> list[str]:
    """The components of a member's path, relative to the image's root; LayerError for `..`."""
    parts = [part for part in PurePosixPath(name).parts if part not in ("/", ".")]
    if ".." in parts:
        raise LayerError(f"member {name!r} leads out of the image")
    return parts


def resolve_inside(root: Path, parts: list[str], follow_last: bool = False) -> Path:
    """The host path of the image path `parts`, its links followed inside `root` as the image
    sees them; the last component only where `follow_last` (else it is what a member replaces)."""
    current: list[str] = []
    pending = list(parts if follow_last else parts[:-1])
    followed = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = root.joinpath(*current, part)
        if candidate.is_symlink():
            followed += 1
            if followed > MAX_LINKS:
                raise LayerError(f"too many levels of links in {'/'.join(parts)}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            pending = [p for p in PurePosixPath(target).parts if p not in ("/", ".")] + pending
            continue
        current.append(part)
    return root.joinpath(*current, *([] if follow_last else parts[-1:]))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _apply_whiteouts(root: Path, members: Iterable[tarfile.TarInfo]) -> None:
    for member in members:
        parts = _parts(member.name)
        if not parts or not parts[-1].startswith(WHITEOUT):
            continue
        if parts[-1] == OPAQUE:
            directory = resolve_inside(root, [*parts[:-1], "."])
            if directory.is_dir() and not directory.is_symlink():
                for entry in os.scandir(directory):
                    _remove(Path(entry.path))
        else:
            _remove(resolve_inside(root, [*parts[:-1], parts[-1].removeprefix(WHITEOUT)]))


def _make_parents(path: Path, root: Path) -> None:
    """Directories a member needs that its archive does not list: made as a container engine makes
    them (root's, 0755)."""
    missing = []
    parent = path.parent
    while parent != root and not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, target: Path) -> None:
    existing = target.is_dir() and not target.is_symlink()
    if not (member.isdir() and existing):
        _remove(target)
    if member.isdir():
        if not existing:
            target.mkdir()
    elif member.isreg():
        source = archive.extractfile(member)
        assert source is not None
        with source, open(target, "xb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        linked = resolve_inside(root, _parts(member.linkname))
        if not linked.exists() or linked.is_dir():
            raise LayerError(f"hard link {member.name!r} to {member.linkname!r}, which the image lacks")
        os.link(linked, target)
        return  # the link shares its file's owner, mode and times
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
    elif member.isfifo():
        os.mkfifo(target)
    else:
        return  # nothing else has a place in a file system
    os.chown(target, member.uid, member.gid, follow_symlinks=False)
    if not member.issym():
        os.chmod(target, stat.S_IMODE(member.mode))  # after chown, which clears set-id bits
    os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def apply_layer(archive_file: IO[bytes], root: Path) -> None:
    """Apply one layer (an uncompressed or gzip-compressed tar archive, seekable) over `root`."""
    try:
        with tarfile.open(fileobj=archive_file, mode="r:*") as archive:
            members = archive.getmembers()
            _apply_whiteouts(root, members)
            directories: list[tuple[Path, tarfile.TarInfo]] = []
            for member in members:
                parts = _parts(member.name)
                if not parts or parts[-1].startswith(WHITEOUT):
                    continue
                target = resolve_inside(root, parts)
                _make_parents(target, root)
                _write_member(archive, member, root, target)
                if member.isdir():
                    directories.append((target, member))
            # A directory's time changes as its entries are written: set it again once they are.
            for target, member in reversed(directories):
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise LayerError(f"not a readable layer archive: {error}") from None
    except OSError as error:
        raise LayerError(f"cannot apply the layer: {error}") from None
