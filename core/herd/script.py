"""Running a test script, so that a failure points at the line of the script that failed.

A script given as a string is compiled under the name of the file that declared the test, shifted to
the line where the string starts there, when the string appears in that file as it is (the usual
triple-quoted script). Otherwise it is compiled under a name of its own whose lines the traceback
module can still show.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import traceback


@dataclass(frozen=True)
class ScriptSource:
    """Where a test was declared: the file and the line of the `Test(...)` call."""

    path: str | None
    line: int | None


def compile_script(script: str, test_name: str, source: ScriptSource) -> CodeType:
    if source.path is not None:
        try:
            text = Path(source.path).read_text()
        except OSError:
            text = ""
        offset = text.find(script)
        if script.strip() and offset >= 0:
            first_line = text.count("\n", 0, offset)
            return compile("\n" * first_line + script, source.path, "exec")
    name = f"<herd script of {test_name}>"
    linecache.cache[name] = (len(script), None, script.splitlines(keepends=True), name)
    return compile(script, name, "exec")


def run_script(
    script: str | Callable[..., Any], namespace: dict[str, Any], test_name: str, source: ScriptSource
) -> None:
    """Run a string script with `namespace` as its globals, or call a function with its parameters."""
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
