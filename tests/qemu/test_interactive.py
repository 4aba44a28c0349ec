"""`herd run --interactive` on a VM (one boot: TCG is slow): the REPL with ptpython, and
`console_interact()`, which types on the VM's serial console and shows what it prints."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.interactive import interactive_run

TEST = """
import herd

ECHO = "[Service]\\nExecStart=/bin/sh -c 'read line < /dev/ttyS0; echo \\"got: $line\\" > /dev/ttyS0'\\n"

MACHINES = {"machine": {"units": {"echo.service": ECHO}}}
test = herd.Test(name="console", machines=MACHINES, script="start_all()")
"""


def test_console_interact_forwards_the_terminal_to_the_vms_console(tmp_path: Path) -> None:
    test_file = tmp_path / "console.py"
    test_file.write_text(textwrap.dedent(TEST))
    with interactive_run(test_file, "qemu", tmp_path, "ptpython", timeout=120) as session:
        session.send_line('machine.wait_for_unit("echo.service"); print("rea" + "dy")')
        session.shows("ready")
        session.send_line("machine.console_interact()")
        session.send_line("ping-me")
        session.shows("got: ping-me")  # the machine's answer, printed from its console
        session.child.sendeof()  # the end of the terminal's input ends the forwarding
        session.send_line('print("ba" + "ck", machine.succeed("echo ok").strip())')
        session.shows("back ok")
        status = session.end()
    assert status == 0
    assert "machine: console closed" in (tmp_path / "out" / "log.txt").read_text()
