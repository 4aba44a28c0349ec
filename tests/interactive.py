"""`herd run FILE --interactive` driven through a pseudo-terminal (pexpect), as a person would.

What the REPL prints is matched on values a statement computes, never on the statement's own
text: ptpython colors the echo of what is typed and prints around it, while `print("ans" + "wer",
...)` shows `answer` only as its output.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect

from tests.conftest import ROOT, assert_nothing_left

HERD = str(Path(sys.executable).with_name("herd"))


class Session:
    """A `herd run --interactive` in a pseudo-terminal; `repl` is "ptpython" or "stdlib" ($HERD_REPL)."""

    def __init__(self, test_file: Path, backend: str, tmp_path: Path, repl: str, timeout: float) -> None:
        self.history = tmp_path / "state" / "herd"
        environment = dict(
            os.environ,
            HERD_REPL=repl,
            XDG_STATE_HOME=str(tmp_path / "state"),
            PROMPT_TOOLKIT_NO_CPR="1",  # pexpect answers no cursor position request
        )
        self.child = pexpect.spawn(
            HERD,
            ["run", str(test_file), "--interactive", "--backend", backend, "-o", str(tmp_path / "out")],
            cwd=str(ROOT),
            env=environment,
            encoding="utf-8",
            timeout=timeout,
            dimensions=(50, 200),
        )
        self.child.logfile_read = (tmp_path / "terminal.txt").open("w")  # what a failure showed
        self.child.expect(r"interactive session of \S+, run ([a-z0-9]{5})")
        self.run_id = self.child.match.group(1)
        self.child.expect("Ctrl-D ends the run")

    def send_line(self, line: str) -> None:
        self.child.send(line + "\r")

    def shows(self, pattern: str) -> re.Match[str]:
        self.child.expect(pattern)
        match = self.child.match
        assert isinstance(match, re.Match)
        return match

    def end(self) -> int:
        """Ctrl-D at the next prompt: the run is torn down; its exit status.

        At the prompt, not before: a Ctrl-D that the terminal's line discipline gets while a command
        runs is an end of file that no REPL reads."""
        self.child.expect(">>>")
        self.child.sendeof()
        self.child.expect(pexpect.EOF, timeout=60)
        self.child.close()
        assert isinstance(self.child.exitstatus, int)
        return self.child.exitstatus


@contextmanager
def interactive_run(
    test_file: Path, backend: str, tmp_path: Path, repl: str, timeout: float = 30
) -> Iterator[Session]:
    """A session that leaves nothing behind: one that a failed test leaves is ended by SIGTERM, which
    tears its run down."""
    session = Session(test_file, backend, tmp_path, repl, timeout)
    try:
        yield session
    finally:
        if session.child.isalive():
            session.child.kill(signal.SIGTERM)
            session.child.expect(pexpect.EOF, timeout=60)
            session.child.close()
        assert_nothing_left(session.run_id)
