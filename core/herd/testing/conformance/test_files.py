"""Files into and out of machines: declared before boot, or copied while they run; both on one
machine, booted once for the module."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from herd.testing.fixtures import machines

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytestrun import Herd


@machines(
    {
        "m": {
            "files": {
                "/etc/app.conf": "mode=test\n",
                "/srv/secret": {"content": b"\x00secret", "mode": 0o600},
                "/var/lib/app/state": "fresh\n",
            }
        }
    },
    scope="module",
)
def with_files(run: Herd) -> None:
    """A machine with files declared, started before the first case."""
    run.start_all()


@pytest.fixture
def m(with_files: Herd) -> Machine:
    return with_files.m


def test_declared_files_are_there_at_boot(m: Machine) -> None:
    assert m.succeed("cat /etc/app.conf") == "mode=test\n"
    assert m.succeed("stat -c %a /srv/secret; od -An -c /srv/secret | tr -s ' '") == "600\n \\0 s e c r e t\n"
    assert m.succeed("cat /var/lib/app/state") == "fresh\n"


def test_copy_from_host_and_back(m: Machine, tmp_path: Path) -> None:
    payload = os.urandom(2_000_000)
    (tmp_path / "blob").write_bytes(payload)
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "file").write_text("inside\n")
    (tmp_path / "tree" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tmp_path / "tree" / "run.sh").chmod(0o755)
    m.copy_from_host(tmp_path / "blob", "/srv/in/blob")
    m.copy_from_host(tmp_path / "tree", "/srv/in/tree")
    assert m.succeed("/srv/in/tree/run.sh; cat /srv/in/tree/sub/file") == "ran\ninside\n"
    back = m.copy_from_machine("/srv/in/blob", "out")
    assert back.read_bytes() == payload
    tree = m.copy_from_machine("/srv/in/tree")
    assert (tree / "sub" / "file").read_text() == "inside\n"
    assert os.access(tree / "run.sh", os.X_OK)
