"""A boot gate: a FIFO that a booting machine waits on until herd opens it.

Some of a machine's boot must wait for herd to do something on the host first: plug the machine's
veths in before network.target (nspawn's `herd-network.service`), move its first process into the
machine's cgroup before it becomes systemd (docker's entry point). The machine reads one line from
the FIFO (`read -r _ < FIFO`), which blocks until herd writes one. herd holds the FIFO open for
reading and writing, so that neither side blocks on opening it; the machine only ever blocks on
reading.
"""

from __future__ import annotations

import os
from pathlib import Path


class Gate:
    """The FIFO at `path`, made if it is not there yet and owned by host id `owner` (the machine's
    root, who opens it), held open until `close()`."""

    def __init__(self, path: Path, owner: int) -> None:
        self.path = path
        if not path.exists():
            os.mkfifo(path, 0o600)
        os.chown(path, owner, owner)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def open(self) -> None:
        """Let the machine's boot go on: one line for its reader."""
        os.write(self._fd, b"open\n")

    def close(self) -> None:
        """Let go of the FIFO; a line not read yet goes with it."""
        os.close(self._fd)
