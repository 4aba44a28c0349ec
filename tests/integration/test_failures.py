"""Failing tests fail clearly, point at the script's line, and still clean up everything."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

from herd import MachineError, Test, TestTimeout

from .conftest import assert_nothing_left, herd_cli, run


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def run_id_of(stderr: str) -> str:
    return re.search(r"run ([a-z0-9]{5})", stderr).group(1)  # type: ignore[union-attr]


def test_a_failing_command_fails_the_run_and_points_at_the_script_line(tmp_path: Path) -> None:
    test_file = write(
        tmp_path / "failing.py",
        '''
        import herd

        test = herd.Test(
            name="failing",
            machines={"a": {}},
            script="""
        a.succeed("true")
        a.succeed("echo about to fail; exit 4")
        """,
        )
        ''',
    )
    result = herd_cli("run", str(test_file), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f'at {test_file}:9: a.succeed("echo about to fail; exit 4")' in result.stderr
    assert "error: a: command `echo about to fail; exit 4` failed (exit status 4)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("FAIL failing in")
    assert_nothing_left(run_id_of(result.stderr))
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "about to fail" in log


def test_an_exception_in_the_script_still_tears_everything_down(tmp_path: Path) -> None:
    def script(a, b, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        raise ValueError("the script itself is wrong")

    outcome = run(Test(name="raises", machines={"a": {}, "b": {}}, script=script), tmp_path)
    assert not outcome.passed and isinstance(outcome.error, ValueError)


def test_an_invalid_test_file_is_rejected_before_anything_starts(tmp_path: Path) -> None:
    test_file = write(
        tmp_path / "invalid.py",
        'import herd\ntest = herd.Test(name="x", machines={"a": {"servces": []}}, script="")\n',
    )
    result = herd_cli("run", str(test_file))
    assert result.returncode == 2
    assert "test 'x', machine 'a', field 'servces': unknown field (did you mean 'services'?)" in result.stderr
    assert "run " not in result.stderr  # nothing started

    result = herd_cli("run", str(test_file), "--backend", "nosuch")
    assert result.returncode == 2

    other = write(
        tmp_path / "unknown_backend.py",
        'import herd\ntest = herd.Test(name="y", machines={"a": {}}, script="")\n',
    )
    result = herd_cli("run", str(other), "--backend", "nosuch")
    assert result.returncode == 2
    assert (
        "test 'y', machine 'a', field 'backend': no backend named 'nosuch' is installed (installed: "
        in result.stderr
    )


def test_a_machine_that_cannot_boot_fails_with_its_console(tmp_path: Path) -> None:
    test = Test(
        name="noboot",
        machines={"a": {"options": {"extra_args": ["--capability=nonsense"]}}},
        script="start_all()",
    )
    outcome = run(test, tmp_path)
    assert isinstance(outcome.error, MachineError)
    message = str(outcome.error)
    assert message.startswith("machine a did not boot: systemd-nspawn exited with status")
    assert "nonsense" in message  # the console's tail says why


def test_the_global_timeout_stops_the_run(tmp_path: Path) -> None:
    started = time.monotonic()
    test = Test(name="slow", machines={"a": {}}, script="a.succeed('sleep 60')", timeout=2)
    outcome = run(test, tmp_path)
    assert isinstance(outcome.error, TestTimeout) and "timeout of 2 s" in str(outcome.error)
    assert time.monotonic() - started < 15
