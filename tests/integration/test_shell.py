"""`herd run --keep`, `herd list` and `herd shell` driven through a pseudo-terminal (pexpect), as a
person at another terminal drives them, and `shell_interact` in a script."""

from __future__ import annotations

import contextlib
import json
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from herd.hooks.types import BackendInfo, Capability
from herd.host.rundir import state_root
from herd.linux.agent import SESSION_GRACE
from herd.run.shellserver import SOCKET_NAME
from tests.conftest import ROOT, assert_nothing_left, start_herd_run

HERD = str(Path(sys.executable).with_name("herd"))
BOOT_TIMEOUT = 300  # seconds: a VM under TCG on a busy host
KEPT = """
import herd

test = herd.Test(
    name="kept",
    machines={"server": {}, "idle": {}},
    script="server.succeed('touch /root/booted')",
)
"""
INTERACTIVE = """
import herd

test = herd.Test(
    name="interactive",
    machines={"server": {}},
    script="server.shell_interact(); server.succeed('test -f /root/typed')",
)
"""


def herd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HERD, *args], capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL
    )


@contextlib.contextmanager
def kept_run(backend: str, tmp_path: Path) -> Iterator[str]:
    """A run of KEPT under `herd run --keep`, its machines up; its id. Ctrl-C ends it afterwards."""
    test_file = tmp_path / "kept.py"
    test_file.write_text(textwrap.dedent(KEPT))
    process, run_id = start_herd_run(
        str(test_file), "--keep", "--backend", backend, "-o", str(tmp_path / "out")
    )
    assert process.stderr is not None
    deadline = time.monotonic() + BOOT_TIMEOUT
    said = ""
    # Read up to the line that says how to get in; what `communicate` reads later bypasses the
    # lines this reader has buffered, so nothing it must see may be left there.
    while f"shell: herd shell {run_id} server" not in said:
        assert time.monotonic() < deadline and process.poll() is None, f"herd run said: {said}"
        said += process.stderr.readline()
    assert "--keep: the machines stay up" in said
    try:
        yield run_id
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=120)
        assert process.returncode == 0, said + rest
        assert_nothing_left(run_id)


def shell_in_machine(run_id: str, command: str) -> str:
    result = herd("shell", run_id, "server", "--", command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def drive_a_kept_run(backend: str, tmp_path: Path) -> None:
    """Every part of working with a live run on `backend`."""
    with kept_run(backend, tmp_path) as run_id:
        check_list(run_id, backend)
        check_interactive_shell(run_id)
        check_commands_and_bad_input(run_id)


def check_list(run_id: str, backend: str) -> None:
    listed = herd("list", "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = [r for r in json.loads(listed.stdout) if r["run"] == run_id]
    assert run["test"] == "kept"
    machines = {m["name"]: m for m in run["machines"]}
    assert machines["server"]["backend"] == backend and machines["server"]["state"] == "running"
    assert machines["idle"]["state"] == "not started"
    assert all("/" in address for address in machines["server"]["addresses"])
    socket = state_root() / run_id / SOCKET_NAME
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600 and socket.stat().st_uid == 0
    text = herd("list").stdout
    assert f"run {run_id}: kept" in text and "server" in text and "running" in text


def check_interactive_shell(run_id: str) -> None:
    terminal = pexpect.spawn(
        HERD,
        ["shell", run_id, "server"],
        dimensions=(30, 100),
        env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    try:
        terminal.expect("# ")  # root's prompt
        terminal.sendline("stty size; echo term=$TERM; test -f /root/booted && echo ok-$((40 + 2))")
        terminal.expect("30 100")
        terminal.expect("term=xterm-256color")
        terminal.expect("ok-42")
        terminal.setwinsize(40, 120)  # the window grows: SIGWINCH reaches herd shell
        time.sleep(0.5)
        terminal.sendline("stty size")
        terminal.expect("40 120")
        # job control: a job stopped with Ctrl-Z, resumed in the background
        terminal.sendline("sleep 4242")
        time.sleep(1)
        terminal.sendcontrol("z")
        terminal.expect("Stopped")
        terminal.sendline("bg; jobs")
        terminal.expect("Running")
        terminal.sendline("nohup sleep 4343 >/dev/null 2>&1 & echo started-$((1 + 1))")
        terminal.expect("started-2")
        assert "4242" in shell_in_machine(run_id, "ps -eo args")
    finally:
        terminal.close(force=True)  # the terminal window closes: herd shell gets SIGHUP
    deadline = time.monotonic() + SESSION_GRACE + 10
    while "sleep 4" in (left := shell_in_machine(run_id, "ps -eo args")):
        assert time.monotonic() < deadline, f"the closed session left processes: {left}"
        time.sleep(0.5)


def check_commands_and_bad_input(run_id: str) -> None:
    assert herd("shell", run_id, "server", "--", "echo", "out;", "exit", "7").returncode == 7
    output = pexpect.run(f"{HERD} shell {run_id} server -- tty", timeout=60).decode()
    assert "/dev/pts/" in output
    for args, message in (
        (["shell", run_id, "nosuch"], f"run {run_id} has no machine 'nosuch'; its machines: server, idle"),
        (["shell", run_id, "idle"], f"machine idle of run {run_id} is not started; running: server"),
        (["shell", "zzzzz", "server"], "no live run 'zzzzz' on this host; live runs: "),
    ):
        result = herd(*args)
        assert result.returncode == 1
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def drive_shell_interact(backend: str, tmp_path: Path) -> None:
    """`machine.shell_interact()` connects herd's own terminal to the machine; the script goes on
    once the shell exits."""
    test_file = tmp_path / "interactive.py"
    test_file.write_text(textwrap.dedent(INTERACTIVE))
    terminal = pexpect.spawn(
        HERD,
        ["run", str(test_file), "--backend", backend, "-o", str(tmp_path / "out")],
        cwd=str(ROOT),
        timeout=BOOT_TIMEOUT,
    )
    try:
        terminal.expect(r"run ([a-z0-9]{5})")
        run_id = terminal.match.group(1).decode()
        terminal.expect("exit the shell to go on")
        terminal.sendline("touch /root/typed; echo typed-$((2 * 3))")
        terminal.expect("typed-6", timeout=60)
        terminal.sendline("exit")
        terminal.expect("PASS interactive", timeout=120)
        terminal.expect(pexpect.EOF, timeout=60)
    finally:
        terminal.close(force=True)
    assert terminal.exitstatus == 0
    assert_nothing_left(run_id)


@pytest.fixture
def shell_backend(backend: BackendInfo, require: Callable[[Capability], None]) -> str:
    require(Capability.SHELL)
    return backend.name


def test_herd_shell_and_herd_list_reach_a_kept_run(shell_backend: str, tmp_path: Path) -> None:
    drive_a_kept_run(shell_backend, tmp_path)


def test_shell_interact_gives_the_terminal_to_the_machine(shell_backend: str, tmp_path: Path) -> None:
    drive_shell_interact(shell_backend, tmp_path)
