"""Execute semantics on a real container: output, status, binary data, timeouts, files in and out."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from herd import CommandFailed, Test, WaitTimeout

from .conftest import run


def test_commands_and_files(tmp_path: Path) -> None:
    payload = os.urandom(3_000_000)
    (tmp_path / "blob").write_bytes(payload)
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "file").write_text("inside\n")
    (tmp_path / "tree" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tmp_path / "tree" / "run.sh").chmod(0o755)

    def script(m, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        # stdout is returned, stderr is not; exit status is exact
        assert m.succeed("echo out; echo err >&2") == "out\n"
        assert m.execute("exit 42") == (42, "")
        assert m.succeed("echo a", "echo b") == "a\nb\n"
        with pytest.raises(CommandFailed, match=r"m: command `false` failed \(exit status 1\)"):
            m.succeed("false")
        assert m.fail("false", "exit 3") == ""
        with pytest.raises(CommandFailed, match="unexpectedly succeeded"):
            m.fail("true")
        # large output arrives whole
        assert len(m.succeed("head -c 30000000 /dev/zero | tr '\\0' x")) == 30_000_000
        # a background process does not hang the call; its output does not matter
        started = time.monotonic()
        m.succeed("sleep 300 >/dev/null 2>&1 &")
        assert time.monotonic() - started < 2
        assert m.succeed("pgrep -x sleep").strip()
        m.succeed("pkill -x sleep")
        # a command past its timeout is killed, with what it started
        with pytest.raises(WaitTimeout, match=r"did not finish within 0\.5 s"):
            m.execute("sh -c 'sleep 200' & sleep 100", timeout=0.5)
        m.wait_until_fails("pgrep -x sleep", timeout=5)
        # input, and files in and out, byte for byte
        assert (
            m.succeed_with_input("sha256sum | cut -c1-64", payload).strip()
            == hashlib.sha256(payload).hexdigest()
        )
        m.copy_from_host(tmp_path / "blob", "/srv/data/blob")
        assert m.succeed("sha256sum /srv/data/blob").split()[0] == hashlib.sha256(payload).hexdigest()
        m.copy_from_host(tmp_path / "tree", "/opt-copy/tree")
        assert m.succeed("cat /opt-copy/tree/sub/file; /opt-copy/tree/run.sh") == "inside\nran\n"
        copied = m.copy_from_machine("/srv/data/blob", "from-m")
        assert copied.read_bytes() == payload
        tree = m.copy_from_machine("/opt-copy/tree")
        assert (tree / "sub" / "file").read_text() == "inside\n" and os.access(tree / "run.sh", os.X_OK)
        # waits return soon after their condition holds, and say what they waited for
        m.succeed("(sleep 0.3; touch /srv/flag) >/dev/null 2>&1 &")
        started = time.monotonic()
        m.wait_for_file("/srv/flag", timeout=10)
        assert time.monotonic() - started < 1.0
        with pytest.raises(
            WaitTimeout, match=r"m: timed out after 0.3 s waiting for `test -e /nope` to succeed"
        ):
            m.wait_for_file("/nope", timeout=0.3)
        assert m.wait_until_succeeds("cat /srv/flag && echo yes", timeout=5) == "yes\n"

    outcome = run(Test(name="execute", machines={"m": {}}, script=script), tmp_path)
    assert outcome.passed, outcome.error


def test_machines_stop_crash_and_boot_again(tmp_path: Path) -> None:
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.succeed("echo kept > /srv/state")  # the first command boots the machine
        boot_id = m.succeed("cat /proc/sys/kernel/random/boot_id")
        assert m.succeed("uname -r").strip() == os.uname().release  # containers share the host's kernel
        m.crash()
        assert not m.is_up()
        assert m.succeed("cat /srv/state") == "kept\n"  # booted again on first use, state kept
        m.shutdown()
        m.start()
        assert m.is_up() and m.succeed("systemctl is-system-running --wait").strip() in {
            "running",
            "degraded",
        }
        assert m.succeed("cat /proc/sys/kernel/random/boot_id") != boot_id  # a new boot

    outcome = run(Test(name="lifecycle", machines={"m": {}}, script=script), tmp_path)
    assert outcome.passed, outcome.error
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "m: crashed (killed)" in log and "m: powered off in" in log
