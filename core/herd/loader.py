"""Loading the tests a file declares (`herd run FILE`)."""

from __future__ import annotations

import runpy
from pathlib import Path

from herd.errors import HerdError
from herd.testdef import Test


def load_tests(path: Path) -> list[Test]:
    """Run the file and return the `herd.Test` objects it defines at top level, in order."""
    if not path.is_file():
        raise HerdError(f"{path}: no such file")
    try:
        namespace = runpy.run_path(str(path), run_name="__herd__")
    except SystemExit as exit_:  # herd would end with the file's status: no test would run
        code = 0 if exit_.code is None else exit_.code
        raise HerdError(f"{path} exited with code {code!r} (SystemExit) while herd loaded it") from None
    tests = [value for value in namespace.values() if isinstance(value, Test)]
    if not tests:
        raise HerdError(f"{path} declares no herd.Test at its top level")
    return tests
