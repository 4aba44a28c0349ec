"""A run's output directory: where its log, consoles and journals stay after teardown."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from herd.declare.spec import test_name_problem
from herd.errors import HerdError


def default_output_dir(test_name: str, run_id: str) -> Path:
    """`herd-output/<test>/<time>-<run id>` in the working directory, made, with the link `latest`
    next to it. The test's name is one path component: a spec made without `parse_test` is checked
    here too, so that no name leads out of `herd-output`."""
    if (problem := test_name_problem(test_name)) is not None:
        raise HerdError(problem)
    base = Path(os.path.abspath("herd-output")) / test_name
    directory = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"
    directory.mkdir(parents=True)
    latest = base / "latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink():
            latest.unlink()
        latest.symlink_to(directory.name)
    return directory


def make_output_dir(chosen: Path | None, test_name: str, run_id: str) -> Path:
    """The run's output directory, made: the one chosen (`--output-dir`), else the default one.

    Always absolute, whatever the working directory, so that every backend gets absolute paths
    (a Docker bind mount takes nothing else).
    """
    directory = Path(os.path.abspath(chosen)) if chosen is not None else default_output_dir(test_name, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def shown_path(path: Path) -> str:
    """`path` as the terminal shows it: relative to the working directory when it is below it."""
    relative = os.path.relpath(path)
    return str(path) if relative == ".." or relative.startswith("../") else relative
