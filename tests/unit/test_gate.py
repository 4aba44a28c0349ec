"""herd.linux.gate: a real reader, as a machine's boot reads the gate, held until the gate opens."""

from __future__ import annotations

import os
import stat
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from herd.linux.gate import Gate


def reader(fifo: Path) -> subprocess.Popen[bytes]:
    """What a machine runs: one line read from the gate, then on."""
    return subprocess.Popen(["/bin/sh", "-c", f"read -r _ < {fifo} && echo through"], stdout=subprocess.PIPE)


def test_a_reader_waits_until_the_gate_opens(tmp_path: Path) -> None:
    with closing(Gate(tmp_path / "gate", os.getuid())) as gate:
        waiting = reader(gate.path)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiting.wait(0.3)
            gate.open()
            assert waiting.communicate(timeout=5) == (b"through\n", None)
        finally:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0


def test_the_fifo_is_the_owners_alone(tmp_path: Path) -> None:
    owner = 12345 if os.geteuid() == 0 else os.getuid()
    with closing(Gate(tmp_path / "gate", owner)) as gate:
        status = gate.path.stat()
    assert stat.S_ISFIFO(status.st_mode)
    assert stat.S_IMODE(status.st_mode) == 0o600
    assert (status.st_uid, status.st_gid) == (owner, owner)


def test_a_line_not_read_goes_with_the_gate_and_the_fifo_serves_the_next_boot(tmp_path: Path) -> None:
    path = tmp_path / "gate"
    with closing(Gate(path, os.getuid())) as gate:
        gate.open()  # nobody reads it
    with closing(Gate(path, os.getuid())) as gate:
        waiting = reader(path)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiting.wait(0.3)
            gate.open()
            assert waiting.communicate(timeout=5)[0] == b"through\n"
        finally:
            waiting.kill()
            waiting.wait()
