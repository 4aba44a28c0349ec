"""Machines on the host image: the host's software, their own identity, nothing private."""

from __future__ import annotations

import os
from pathlib import Path

from herd import Test

from .conftest import run


def test_machines_run_the_host_os_with_their_own_identity(tmp_path: Path) -> None:
    host_machine_id = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
    marker = Path("/root") / f"herd-private-{os.getpid()}"
    marker.write_text("secret")

    def script(alpha, beta, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        assert alpha.succeed("hostname").strip() == "alpha"
        ids = {alpha.succeed("cat /etc/machine-id"), beta.succeed("cat /etc/machine-id")}
        assert len(ids) == 2 and host_machine_id + "\n" not in ids
        assert alpha.succeed("cat /etc/os-release") == Path("/etc/os-release").read_text()
        assert alpha.fail(f"test -e {marker}") == ""  # /root is the machine's own, empty
        assert alpha.succeed("getent hosts beta").split()[0] == "192.168.1.2"
        alpha.fail("touch /usr/herd-was-here")  # /usr is the host's, read-only
        alpha.succeed("echo changed > /etc/issue")  # /etc is copy-on-write
        assert Path("/etc/issue").read_text() != "changed\n"
        # SUID and file-capability binaries work for unprivileged users
        alpha.succeed("su -s /bin/sh nobody -c 'ping -c 1 -W 2 beta'")
        assert alpha.succeed("systemctl is-system-running").strip() == "running"

    try:
        outcome = run(Test(name="image", machines={"alpha": {}, "beta": {}}, script=script), tmp_path)
    finally:
        marker.unlink()
    assert outcome.passed, outcome.error
    # the user session `su` opened does not stall the machine's power-off
    assert "alpha: powered off in" in (tmp_path / "out" / "log.txt").read_text()
