"""What a machine prints reaches the user's terminal and log.txt shown, never obeyed: a machine
cannot print a fake PASS in colour or retitle the window. The script still gets it byte for byte."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.hooks.types import BackendInfo
from tests.conftest import assert_nothing_left

ESCAPES = r"\033[32mPASS\033]0;title\007"  # as printf reads it: green, then a window title and BEL
RAW = "\x1b[32mPASS\x1b]0;title\x07"
SHOWN = r"\x1b[32mPASS\x1b]0;title\x07"

TEST_FILE = f"""
import herd

def script(a):
    assert a.succeed("printf '{ESCAPES}'") == {RAW!r}
    assert a.execute("printf '{ESCAPES}'") == (0, {RAW!r})
    a.succeed("printf '{ESCAPES}' >&2; exit 1")

test = herd.Test(name="escapes", machines={{"a": {{}}}}, script=script)
"""


def test_escape_sequences_from_a_machine_are_shown_not_obeyed(
    herd_cli: Callable,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    test_file = tmp_path / "escapes.py"
    test_file.write_text(TEST_FILE)
    result = herd_cli("run", str(test_file), "--verbose", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 1  # the third command; the first two got the output as it is
    assert "error: a: command `printf" in result.stderr and "exit 1` failed (exit status 1)" in result.stderr
    assert f"    {SHOWN}" in result.stderr  # the end of its standard error, in the error
    log = (tmp_path / "out" / "log.txt").read_text()
    assert SHOWN in log
    for where in (result.stderr, log):
        assert "\x1b" not in where and "\x07" not in where
    assert_nothing_left(re.search(r"run ([a-z0-9]{5})", result.stderr).group(1))  # type: ignore[union-attr]


PYTEST_FILE = f"""
import pytest

@pytest.mark.herd(machines={{"a": {{}}}})
def test_fails(a):
    a.succeed("logger -t demo '{ESCAPES}'; printf '{ESCAPES}' >&2; exit 1")
"""


def test_a_failed_pytest_report_shows_escape_sequences_from_a_machine(
    pytester: pytest.Pytester, backend: BackendInfo, tmp_path: Path
) -> None:
    pytester.makepyfile(PYTEST_FILE)
    output = tmp_path / "out"
    result = pytester.runpytest_subprocess(
        "--herd-backend", backend.name, "--herd-output-dir", str(output), "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert SHOWN in text and "herd: the end of a's journal" in text
    assert "\x1b" not in text and "\x07" not in text
    [log] = output.glob("*/log.txt")
    assert_nothing_left(re.search(r"· run ([a-z0-9]{5})", log.read_text()).group(1))  # type: ignore[union-attr]
