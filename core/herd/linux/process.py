"""Waiting for a child process to exit, to the millisecond.

`subprocess.Popen.wait(timeout)` polls with sleeps that grow to 50 ms, which adds up to 50 ms to
every machine's power-off; a pidfd tells the moment the process exits.
"""

from __future__ import annotations

import os
import select
import subprocess


def wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to `timeout` seconds for `process` to exit; reap it and return True if it did."""
    if process.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:  # exited between poll() and here
        process.wait()
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], max(timeout, 0))
    finally:
        os.close(pidfd)
    if not readable:
        return False
    process.wait()
    return True
