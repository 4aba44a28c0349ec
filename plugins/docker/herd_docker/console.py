"""A machine's console: a pseudo-terminal of herd's, copied to `console.log` as it is written.

systemd writes its boot and shutdown messages only to a terminal (it refuses a plain file as
/dev/console), and Docker keeps a container's terminal output in its log driver, which may keep
none. So herd opens a pty pair on the host and binds the terminal end at the container's
/dev/console (Docker's device rules allow every pty); a thread copies what arrives to the log.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from pathlib import Path


class Console:
    """A pty whose terminal end is `terminal`; everything written to it is appended to `log`.

    herd holds the terminal end open too, until `close()`: the copying ends when no one holds it.
    """

    def __init__(self, log: Path, name: str, owner: int = 0) -> None:
        self.log = log
        self._controller, self._terminal = os.openpty()
        tty.setraw(self._terminal)  # no echo, no CR before LF: the log gets the bytes as written
        os.fchown(self._terminal, owner, -1)  # a confined machine's root (host id `owner`) opens it
        self.terminal = os.ttyname(self._terminal)
        self._thread = threading.Thread(target=self._copy, name=f"herd-console-{name}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        with open(self.log, "ab") as log:
            while True:
                try:
                    data = os.read(self._controller, 1 << 16)
                except OSError:  # EIO: every terminal end is closed
                    break
                if not data:
                    break
                log.write(data)
                log.flush()
        os.close(self._controller)

    def close(self) -> None:
        """Let go of the terminal end and wait for the copy to take what is left."""
        with contextlib.suppress(OSError):
            os.close(self._terminal)
        self._thread.join(timeout=5)
