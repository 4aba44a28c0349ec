"""Where a run keeps its state, under a short id that names everything it creates.

Each run owns `/run/herd/<id>/` (override with HERD_STATE_DIR) and holds an exclusive lock on its
`lock` file for as long as the process lives. The id (five lower-case letters and digits) goes into
the names of the run's links and cgroups, so that they never collide with another run's.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import string
from pathlib import Path

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 5


def state_root() -> Path:
    return Path(os.environ.get("HERD_STATE_DIR", "/run/herd"))


class RunDir:
    """The state directory of one live run."""

    def __init__(self) -> None:
        root = state_root()
        root.mkdir(parents=True, exist_ok=True)
        while True:
            run_id = "".join(ID_ALPHABET[byte % len(ID_ALPHABET)] for byte in os.urandom(ID_LENGTH))
            try:
                (root / run_id).mkdir()
                break
            except FileExistsError:
                continue
        self.id = run_id
        self.path = root / run_id
        self._lock = os.open(self.path / "lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.write(self._lock, f"{os.getpid()}\n".encode())

    def machine_dir(self, name: str) -> Path:
        return self.path / "machines" / name

    def remove(self) -> None:
        """Delete the run's state and release its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock)
