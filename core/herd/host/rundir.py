"""Where a run keeps its state, under a short id that names everything it creates.

Each run claims an id by creating `/run/herd/<id>.lock`, already locked: the lock file is made
and locked under a temporary name, then hard-linked to its final name, which fails if the id is
taken. The run holds the lock for as long as its process lives, so a lock that can be taken
belongs to a dead run (see `herd.host.residue`). The run's state lives in `/run/herd/<id>/`. The id
(five lower-case letters and digits) goes into the names of the run's links, cgroups and firewall
rules, so that they never collide with another run's.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import string
import tempfile
from pathlib import Path

from herd.errors import HerdError
from herd.linux.libc import MS_NOSUID, mount, unmount

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 5
LOCK_SUFFIX = ".lock"


STATE_ROOT = Path("/run/herd")


def state_root() -> Path:
    """Fixed for every run on a host: a run's lock must be where every other run looks for it."""
    return STATE_ROOT


def lock_path(run_id: str) -> Path:
    return state_root() / f"{run_id}{LOCK_SUFFIX}"


def new_id() -> str:
    return "".join(ID_ALPHABET[byte % len(ID_ALPHABET)] for byte in os.urandom(ID_LENGTH))


def try_lock(path: Path) -> int | None:
    """The descriptor of `path`, locked, if no live process holds its lock; else None."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _claim(root: Path) -> tuple[int, str]:
    """Create a lock file under a free id in `root`, already locked; return its descriptor and id."""
    root.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=root, prefix=".claim-")
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        while True:
            run_id = new_id()
            try:
                os.link(temporary, lock_path(run_id))
                return descriptor, run_id
            except FileExistsError:
                continue
    except BaseException:
        os.close(descriptor)
        raise
    finally:
        os.unlink(temporary)


class RunDir:
    """The id, lock and state directory of one live run.

    Raises `HerdError` naming the directory and the system's error when the host cannot keep a
    run's state there (read-only, full, not a directory).
    """

    def __init__(self) -> None:
        root = state_root()
        try:
            self._lock, self.id = _claim(root)
        except OSError as error:
            raise _unusable(root, error) from None
        self.path = root / self.id
        try:
            self.path.mkdir()
        except OSError as error:
            lock_path(self.id).unlink(missing_ok=True)
            os.close(self._lock)
            raise _unusable(self.path, error) from None

    def machine_dir(self, name: str, size_mib: int) -> Path:
        """A new directory for the machine's state: a file system of `size_mib` MiB of its own,
        which bounds everything the machine writes (its root's upper layers and directories), in
        every backend that keeps its writable layer there. It lives until the run is removed, so
        what a stopped machine wrote is there when it starts again. Device nodes there work (a
        backend may keep twins of granted nodes there); which ones a machine may open is its
        device policy's to say."""
        path = self.path / "machines" / name
        path.mkdir(parents=True)
        try:
            mount("herd", path, "tmpfs", MS_NOSUID, f"size={size_mib}m,mode=0755")
        except OSError as error:
            raise HerdError(f"cannot mount a file system for machine {name}: {error.strerror}") from None
        return path

    def remove(self) -> None:
        """Unmount and delete the run's state, then its lock file, and release the lock."""
        unmount_all(self.id)
        shutil.rmtree(self.path, ignore_errors=True)
        lock_path(self.id).unlink(missing_ok=True)
        os.close(self._lock)


def mounts(run_id: str) -> list[str]:
    """Every mount point in the run's state directory, in the order they were mounted."""
    state = str(state_root() / run_id)
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if state in line]


def unmount_all(run_id: str) -> list[str]:
    """Detach every mount in the run's state directory, the latest first; return those detached."""
    return [point for point in reversed(mounts(run_id)) if unmount(point)]


def _unusable(directory: Path, error: OSError) -> HerdError:
    return HerdError(f"cannot keep the run's state in {directory}: {error.strerror or error}")
