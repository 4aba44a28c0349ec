"""Running a test script, so that a failure points at the line of the script that failed.

A script given as a string is compiled under the name of the file that declared the test, shifted to
the line where the string starts there, when the string appears in that file as it is (the usual
triple-quoted script). Otherwise it is compiled under a name of its own whose lines the traceback
module can still show.

A script that raises SystemExit (`sys.exit()`, even `sys.exit(0)`) or KeyboardInterrupt ends early,
so its test fails with `ScriptExitError`, which names the exit code and the line; nothing in herd
sees either, so the run tears down and a file's other tests still run. A real Ctrl-C never reaches
the script as KeyboardInterrupt: the driver turns SIGINT into its own `Interrupted`.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any

from herd.errors import ScriptExitError

if TYPE_CHECKING:
    import traceback


@dataclass(frozen=True)
class ScriptSource:
    """Where a test was declared: the file and the line of the `Test(...)` call."""

    path: str | None
    line: int | None


def script_place(script: str, test_name: str, source: ScriptSource) -> tuple[str, int]:
    """Where a string script's lines are: the file that holds it and the number of lines before it
    there, else the name of its own (`<herd script of TEST>`) and 0."""
    if source.path is not None:
        try:
            text = Path(source.path).read_text()
        except OSError:
            text = ""
        offset = text.find(script)
        if script.strip() and offset >= 0:
            return source.path, text.count("\n", 0, offset)
    return f"<herd script of {test_name}>", 0


def compile_script(script: str, test_name: str, source: ScriptSource) -> CodeType:
    filename, lines_before = script_place(script, test_name, source)
    if filename == source.path:
        return compile("\n" * lines_before + script, filename, "exec")
    linecache.cache[filename] = (len(script), None, script.splitlines(keepends=True), filename)
    return compile(script, filename, "exec")


def run_script(
    script: str | Callable[..., Any], namespace: dict[str, Any], test_name: str, source: ScriptSource
) -> None:
    """Run a string script with `namespace` as its globals, or call a function with its parameters.

    Raises `ScriptExitError` when the script raises SystemExit or KeyboardInterrupt.
    """
    try:
        _run(script, namespace, test_name, source)
    except (SystemExit, KeyboardInterrupt) as error:
        reason = exit_reason(error, test_name, source)
        raise ScriptExitError(reason).with_traceback(error.__traceback__) from error


def exit_reason(error: SystemExit | KeyboardInterrupt, test_name: str, source: ScriptSource) -> str:
    """Why a test whose script raised `error` failed, naming the exit code and the line."""
    frame = script_frames(error, source)[-1]
    where = f"{frame.filename}:{frame.lineno}"
    if isinstance(error, KeyboardInterrupt):
        return (
            f"test {test_name!r}: the script raised KeyboardInterrupt at {where}; it fails the test "
            f"(a Ctrl-C interrupts the whole run instead)"
        )
    code = 0 if error.code is None else error.code  # as the interpreter would exit
    return (
        f"test {test_name!r}: the script exited with code {code!r} (SystemExit) at {where}; "
        f"a script passes by returning, so the test fails"
    )


def _run(
    script: str | Callable[..., Any], namespace: dict[str, Any], test_name: str, source: ScriptSource
) -> None:
    if isinstance(script, str):
        exec(compile_script(script, test_name, source), namespace)
        return
    import inspect

    parameters = inspect.signature(script).parameters
    script(**{name: namespace[name] for name in parameters if name in namespace})


def script_frames(error: BaseException, source: ScriptSource) -> list[traceback.FrameSummary]:
    """The frames of `error`'s traceback that lie in the test's own code, not in herd's."""
    import traceback

    tb: TracebackType | None = error.__traceback__
    frames = traceback.extract_tb(tb)
    own = [
        f
        for f in frames
        if f.filename.startswith("<herd script") or os.path.realpath(f.filename) == source.path
    ]
    return own or frames[-1:]
