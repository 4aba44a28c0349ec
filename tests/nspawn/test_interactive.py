"""`herd run --interactive` on containers, with ptpython's REPL and with the standard library's:
the script's names, completion, Ctrl-C that stops a command and not the run, `test_script()`, and
Ctrl-D that tears the run down."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from tests.interactive import interactive_run

TEST = """
import herd

test = herd.Test(name="session", machines={"machine": {}}, script='machine.succeed("test -e /ready")')
"""


SLEEP = "sleep 6171"  # a command of the machine's that the host sees among its processes


def sleeping() -> bool:
    return subprocess.run(["pgrep", "-fx", SLEEP], stdout=subprocess.DEVNULL, check=False).returncode == 0


def following(output: Path) -> bool:
    """Whether a `journalctl --follow` of a run whose output is in `output` runs."""
    found = subprocess.run(
        ["pgrep", "-f", f"journalctl --directory={output}/.* --follow"],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return found.returncode == 0


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("repl", ["ptpython", "stdlib"])
def test_a_session_drives_the_machines_and_its_outcome_is_the_last_scripts(repl: str, tmp_path: Path) -> None:
    test_file = tmp_path / "session.py"
    test_file.write_text(textwrap.dedent(TEST))
    with interactive_run(test_file, "nspawn", tmp_path, repl) as session:
        session.child.send("machine.wait_for_conso\t")
        session.shows("le_text")  # completed, whichever way the REPL shows it
        session.child.sendintr()  # at the prompt: the line is dropped
        session.send_line('print("ans" + "wer", machine.succeed("echo $((6 * 7))").strip())')
        session.shows("answer 42")
        session.send_line(f'machine.succeed("{SLEEP}")')
        wait_until(lambda: sleeping() is True)
        wait_until(lambda: following(tmp_path / "out"))  # once journald has written a file
        session.child.sendintr()
        session.shows("KeyboardInterrupt")
        wait_until(lambda: sleeping() is False)  # the command stopped in the machine too
        assert following(tmp_path / "out")  # but not herd's own helpers: the journal still streams
        session.send_line("test_script()")  # and the run goes on
        session.shows("CommandFailed")
        if repl == "ptpython":  # fixed and run again, it passes: the session passes
            session.send_line('machine.succeed("touch /ready"); test_script(); print("scr" + "ipt passed")')
            session.shows("script passed")
        status = session.end()
    assert status == (0 if repl == "ptpython" else 1)
    assert (session.history / ("ptpython-history" if repl == "ptpython" else "history")).read_text()
    log = (tmp_path / "out" / "log.txt").read_text()
    assert ("PASS session" if repl == "ptpython" else "FAIL session") in log


@pytest.mark.parametrize("repl", ["ptpython", "stdlib"])
def test_sigterm_ends_the_session_and_the_run(repl: str, tmp_path: Path) -> None:
    test_file = tmp_path / "session.py"
    test_file.write_text(textwrap.dedent(TEST))
    with interactive_run(test_file, "nspawn", tmp_path, repl) as session:
        session.send_line('machine.start(); print("bo" + "oted")')
        session.shows("booted")
        session.shows(">>>")  # at the prompt, where the REPL reads the terminal
        session.child.kill(signal.SIGTERM)
        session.shows("interrupted by SIGTERM: stopping the machines")
        session.shows("INTERRUPTED session by SIGTERM")
        session.child.expect(pexpect.EOF)
        session.child.close()
    assert session.child.exitstatus == 143
