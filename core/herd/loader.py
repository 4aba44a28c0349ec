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
    namespace = runpy.run_path(str(path), run_name="__herd__")
    tests = [value for value in namespace.values() if isinstance(value, Test)]
    if not tests:
        raise HerdError(f"{path} declares no herd.Test at its top level")
    return tests
