"""Failing tests fail clearly, point at the script's line, and still clean up everything."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from herd import Test, TestTimeout
from tests.conftest import ROOT, assert_nothing_left


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def run_id_of(stderr: str) -> str:
    return re.search(r"run ([a-z0-9]{5})", stderr).group(1)  # type: ignore[union-attr]


def test_a_failing_command_fails_the_run_and_points_at_the_script_line(
    herd_cli: Callable, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    test_file = write(
        tmp_path / "failing.py",
        '''
        import herd

        test = herd.Test(
            name="failing",
            machines={"a": {}},
            script="""
        a.succeed("true")
        a.succeed("echo about to fail >&2; exit 4")
        """,
        )
        ''',
    )
    result = herd_cli("run", str(test_file), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f'at {test_file}:9: a.succeed("echo about to fail >&2; exit 4")' in result.stderr
    assert "error: a: command `echo about to fail >&2; exit 4` failed (exit status 4)" in result.stderr
    assert "    about to fail" in result.stderr  # the end of its standard error
    assert result.stderr.strip().splitlines()[-1].startswith("FAIL failing in")
    assert_nothing_left(run_id_of(result.stderr))
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "about to fail" in log


def test_a_failing_function_script_points_at_its_line_even_by_a_relative_path(
    herd_cli: Callable, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    write(
        tmp_path / "function.py",
        """
        import herd

        def script(a):
            a.succeed("exit 5")

        test = herd.Test(name="function", machines={"a": {}}, script=script)
        """,
    )
    result = herd_cli("run", "function.py", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert 'at function.py:5: a.succeed("exit 5")' in result.stderr
    assert_nothing_left(run_id_of(result.stderr))


def test_an_exception_in_the_script_still_tears_everything_down(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(a, b, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        raise ValueError("the script itself is wrong")

    outcome = run_test(Test(name="raises", machines={"a": {}, "b": {}}, script=script))
    assert not outcome.passed and isinstance(outcome.error, ValueError)


def test_an_invalid_test_file_is_rejected_before_anything_starts(herd_cli: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    test_file = write(
        tmp_path / "invalid.py",
        'import herd\ntest = herd.Test(name="x", machines={"a": {"servces": []}}, script="")\n',
    )
    result = herd_cli("run", str(test_file))
    assert result.returncode == 2
    assert "test 'x', machine 'a', field 'servces': unknown field (did you mean 'services'?)" in result.stderr
    assert "run " not in result.stderr  # nothing started

    other = write(
        tmp_path / "unknown_backend.py",
        'import herd\ntest = herd.Test(name="y", machines={"a": {"backend": "nosuch"}}, script="")\n',
    )
    result = herd_cli("run", str(other))
    assert result.returncode == 2
    assert (
        "test 'y', machine 'a', field 'backend': no backend named 'nosuch' is installed (installed: "
        in result.stderr
    )


def test_a_script_with_a_typo_is_rejected_before_anything_starts_unless_unchecked(
    herd_cli: Callable, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    test_file = write(
        tmp_path / "typo.py",
        '''
        import herd

        test = herd.Test(
            name="typo",
            machines={"server": {}},
            script="""
        server.succeed("true")
        machine.succed("true")
        """,
        )
        ''',
    )
    result = herd_cli("run", str(test_file), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert (
        f"herd: test 'typo': {test_file}:9: machine 'machine' has no method or attribute 'succed'; "
        "did you mean 'succeed'? (`herd run --no-check` skips this check)"
    ) in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "out").exists()  # nothing started

    unchecked = herd_cli("run", "--no-check", str(test_file), "--output-dir", str(tmp_path / "out"))
    assert unchecked.returncode == 1
    assert "error: AttributeError: 'Machine' object has no attribute 'succed'" in unchecked.stderr
    assert_nothing_left(run_id_of(unchecked.stderr))


def test_a_test_file_that_does_not_load_is_one_line_and_exit_status_2(
    herd_cli: Callable,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    broken = write(tmp_path / "syntax.py", "import herd\n\ntest = herd.Test(name='x',\n")
    result = herd_cli("run", str(broken))
    assert result.returncode == 2
    assert result.stderr == f"herd: {broken}:3: SyntaxError: '(' was never closed\n"

    raising = write(tmp_path / "raising.py", "import herd\n\nMACHINES = {}['a']\n")
    result = herd_cli("run", str(raising))
    assert result.returncode == 2
    assert result.stderr == f"herd: {raising}:3: KeyError: 'a'\n"


def test_a_read_only_state_directory_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    """/run/herd is made read-only in a mount namespace of the command's own: other runs on the host
    keep theirs."""
    herd = Path(sys.executable).with_name("herd")
    inner = (
        "mkdir -p /run/herd && mount --bind /run/herd /run/herd && mount -o remount,bind,ro /run/herd && "
        f"exec {herd} run {ROOT / 'examples' / 'ping.py'} --output-dir {tmp_path / 'out'}"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == "herd: cannot keep the run's state in /run/herd: Read-only file system\n"
    assert not (tmp_path / "out").exists()  # nothing started


def test_the_global_timeout_stops_the_run(run_test: Callable) -> None:  # type: ignore[type-arg]
    started = time.monotonic()
    outcome = run_test(Test(name="slow", machines={"a": {}}, script="a.succeed('sleep 60')", timeout=2))
    assert isinstance(outcome.error, TestTimeout) and "timeout of 2 s" in str(outcome.error)
    assert time.monotonic() - started < 15


def test_an_exit_or_keyboard_interrupt_in_a_script_fails_that_test_only(
    herd_cli: Callable, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    test_file = write(
        tmp_path / "exits.py",
        """
        import herd

        exit_0 = herd.Test(name="exit-0", machines={"a": {}}, script="import sys\\nsys.exit(0)")
        exit_3 = herd.Test(name="exit-3", machines={"a": {}}, script="import sys\\nsys.exit(3)")
        interrupt = herd.Test(name="interrupt", machines={"a": {}}, script="raise KeyboardInterrupt")
        after = herd.Test(name="after", machines={"a": {}}, script="a.succeed('true')")
        """,
    )
    result = herd_cli("run", str(test_file), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 1
    ends = [line.split(" in ")[0] for line in result.stderr.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert ends == ["FAIL exit-0", "FAIL exit-3", "FAIL interrupt", "PASS after"]
    for reason in (
        "error: test 'exit-0': the script exited with code 0 (SystemExit) at <herd script of exit-0>:2",
        "error: test 'exit-3': the script exited with code 3 (SystemExit) at <herd script of exit-3>:2",
        f"error: test 'interrupt': the script raised KeyboardInterrupt at {test_file}:6",  # found there
    ):
        assert reason in result.stderr
    for run_id in re.findall(r"· run ([a-z0-9]{5})", result.stderr):
        assert_nothing_left(run_id)
