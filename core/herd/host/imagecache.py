"""herd's cache of images and layers: made once, atomically, and never changed once made.

The cache lives in `$HERD_CACHE_DIR/images` (default `/var/cache/herd/images`). Each entry is a
directory named `<kind>-<key>`, where the key is a digest of everything its content depends on
(so a new content is a new entry, never a change to an old one), holding what its builder made and
`herd-entry.json` (kind, key, description, size, when it was made); the file's modification time
is the entry's last use.

- Atomic: an entry is built in `.build-<name>-XXXX` and renamed into place when complete. A build
  that fails, or a process killed while building (SIGKILL, Ctrl-C), leaves no entry; what it left
  is debris, which `herd clean` and `herd images prune` remove (`remove_debris`).
- Built once: a builder holds `.locks/<name>.lock` while it builds; a second process that needs
  the same entry waits for it, then uses what the first made.
- Held while in use: a process that uses an entry holds a shared lock on its directory until it
  exits (`Entry.in_use`). A prune takes the exclusive lock without waiting, so it never removes an
  entry that a live run uses, and renames the entry away before deleting it, so that a process that
  opens it meanwhile sees it gone and builds it anew.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from herd.host.idmap import entries_below
from herd.host.rundir import try_lock

DEFAULT_DIRECTORY = Path("/var/cache/herd")
ENTRY_FILE = "herd-entry.json"
BUILDING = ".build-"
TRASH = ".trash-"
LOCKS = ".locks"

_held: dict[Path, int] = {}  # entries this process uses: their locked descriptors
_held_lock = threading.Lock()


def cache_dir() -> Path:
    """Where herd caches what it builds: `$HERD_CACHE_DIR`, else /var/cache/herd."""
    return Path(os.environ.get("HERD_CACHE_DIR") or DEFAULT_DIRECTORY)


def images_dir() -> Path:
    return cache_dir() / "images"


@dataclass(frozen=True)
class Entry:
    """One entry of the cache, as `entries` lists it. `size` is in bytes (what its files take on
    disk); `last_use` and `created` are times since the epoch; `in_use` tells whether a live
    process holds it."""

    name: str
    kind: str
    key: str
    description: str
    path: Path
    size: int
    created: float
    last_use: float
    in_use: bool


def disk_usage(directory: Path) -> int:
    """Bytes the files below `directory` take on disk, each inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _, info in (("", os.lstat(directory)), *entries_below(str(directory))):
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def _open_directory(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _same(path: Path, descriptor: int) -> bool:
    """Whether `path` still names the directory open at `descriptor` (a prune renames entries away)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (info.st_dev, info.st_ino) == (held.st_dev, held.st_ino)


def _hold(path: Path) -> bool:
    """Hold the entry at `path` for the rest of this process's life, if it exists; mark its use."""
    with _held_lock:
        if path in _held and _same(path, _held[path]):
            os.utime(path / ENTRY_FILE)
            return True
        descriptor = _open_directory(path)
        if descriptor is None:
            return False
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        if not _same(path, descriptor) or not (path / ENTRY_FILE).is_file():
            os.close(descriptor)
            return False
        stale = _held.pop(path, None)
        if stale is not None:
            os.close(stale)
        _held[path] = descriptor
        os.utime(path / ENTRY_FILE)
        return True


@contextlib.contextmanager
def _build_lock(root: Path, name: str, progress: Callable[[str], None]) -> Iterator[None]:
    locks = root / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another herd process is building it: waiting for it")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def ensure(
    kind: str,
    key: str,
    description: str,
    build: Callable[[Path], None],
    progress: Callable[[str], None] = lambda _step: None,
    *,
    root: Path | None = None,
) -> Path:
    """The entry `<kind>-<key>`: taken from the cache, or made by `build(directory)` (into an empty
    directory, which becomes the entry once `build` returns) and put there. The entry is held until
    this process exits. An exception from `build` leaves nothing behind and goes to the caller."""
    root = root or images_dir()
    name = f"{kind}-{key}"
    path = root / name
    if _hold(path):
        return path
    with _build_lock(root, name, progress):
        if _hold(path):  # another process built it while this one waited
            return path
        for stale in root.glob(f"{BUILDING}{name}-*"):  # its builder died: it held this lock
            shutil.rmtree(stale, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=f"{BUILDING}{name}-", dir=root))
        building.chmod(0o755)
        try:
            started = time.time()
            build(building)
            metadata = {"kind": kind, "key": key, "description": description, "created": started}
            metadata["size"] = disk_usage(building)
            (building / ENTRY_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
            os.rename(building, path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    if not _hold(path):
        raise OSError(f"the cache entry {path} vanished as soon as it was made")
    return path


def _entry(path: Path) -> Entry | None:
    try:
        metadata = json.loads((path / ENTRY_FILE).read_text())
        last_use = (path / ENTRY_FILE).stat().st_mtime
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    descriptor = _open_directory(path)
    if descriptor is None:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        in_use = False
    except BlockingIOError:
        in_use = True
    finally:
        os.close(descriptor)
    return Entry(
        name=path.name,
        kind=str(metadata.get("kind", "?")),
        key=str(metadata.get("key", "?")),
        description=str(metadata.get("description", "")),
        path=path,
        size=int(metadata.get("size", 0)),
        created=float(metadata.get("created", 0.0)),
        last_use=last_use,
        in_use=in_use,
    )


def entries(root: Path | None = None) -> list[Entry]:
    """The cache's entries, the most recently used first."""
    root = root or images_dir()
    if not root.is_dir():
        return []
    found = [e for p in root.iterdir() if not p.name.startswith(".") and (e := _entry(p)) is not None]
    return sorted(found, key=lambda entry: -entry.last_use)


def _remove(path: Path) -> bool:
    """Remove the entry at `path` unless a live process holds it."""
    descriptor = _open_directory(path)
    if descriptor is None:
        return False
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not _same(path, descriptor):
            return False
        trash = Path(tempfile.mkdtemp(prefix=f"{TRASH}{path.name}-", dir=path.parent))
        os.rename(path, trash / path.name)
    finally:
        os.close(descriptor)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def prune(
    older_than: float = 0.0, kind: str | None = None, root: Path | None = None, keep: Path | None = None
) -> list[Entry]:
    """Remove the entries (of `kind`, when given) that no live process holds and that nobody used
    for `older_than` seconds, but `keep`; then the debris of dead builds. Return those removed."""
    root = root or images_dir()
    limit = time.time() - older_than
    removed = [
        entry
        for entry in entries(root)
        if (kind is None or entry.kind == kind)
        and entry.path != keep
        and not entry.in_use
        and entry.last_use <= limit
        and _remove(entry.path)
    ]
    remove_debris(root)
    return removed


def remove_debris(root: Path | None = None, dry_run: bool = False) -> list[Path]:
    """Remove what dead builds and interrupted prunes left (`.build-*` whose builder no longer
    holds its lock, `.trash-*`); return what was removed (or, with `dry_run`, would be)."""
    root = root or images_dir()
    found = []
    for path in sorted(root.glob(f"{BUILDING}*")) + sorted(root.glob(f"{TRASH}*")):
        lock = None
        if path.name.startswith(BUILDING):
            name = path.name[len(BUILDING) :].rsplit("-", 1)[0]
            lock_file = root / LOCKS / f"{name}.lock"
            lock = try_lock(lock_file)
            if lock is None and lock_file.exists():
                continue  # its builder is alive
        try:
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
        finally:
            if lock is not None:
                os.close(lock)
        found.append(path)
    return found
