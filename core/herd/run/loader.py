"""Loading the tests a file declares (`herd run FILE`)."""

from __future__ import annotations

import runpy
import traceback
from pathlib import Path

from herd.errors import HerdError
from herd.run.testdef import Test


def load_tests(path: Path) -> list[Test]:
    """Run the file and return the `herd.Test` objects it defines at top level, in order.

    A file that cannot run (a syntax error, an exception while it runs) raises `HerdError` in one
    line: where, and what; herd's own errors (an invalid declaration) go through as they are.
    """
    if not path.is_file():
        raise HerdError(f"{path}: no such file")
    try:
        namespace = runpy.run_path(str(path), run_name="__herd__")
    except HerdError:
        raise
    except SyntaxError as error:
        raise HerdError(f"{error.filename}:{error.lineno}: {type(error).__name__}: {error.msg}") from None
    except SystemExit as exit_:  # herd would end with the file's status: no test would run
        code = 0 if exit_.code is None else exit_.code
        raise HerdError(f"{path} exited with code {code!r} (SystemExit) while herd loaded it") from None
    except Exception as error:
        raise HerdError(f"{_failing_line(error, path)}: {type(error).__name__}: {error}") from None
    tests = [value for value in namespace.values() if isinstance(value, Test)]
    if not tests:
        raise HerdError(f"{path} declares no herd.Test at its top level")
    return tests


def _failing_line(error: Exception, path: Path) -> str:
    """`file:line` of the file's last line in the error's traceback (the file itself, or the
    statement in it that called the code that raised)."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = [frame.lineno for frame in frames if frame.filename == str(path)]
    return f"{path}:{lines[-1]}" if lines else str(path)
