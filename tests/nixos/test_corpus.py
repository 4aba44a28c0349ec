"""Each test of the nixpkgs corpus (tests/nixos/corpus) run on the backend under test: it passes
when nixpkgs' script, verbatim, passes and the run left nothing behind."""

from __future__ import annotations

import traceback
from pathlib import Path
from types import ModuleType

import pytest

from herd.hooks.types import BackendInfo
from tests.conftest import run_and_check
from tests.nixos import corpus

# The scripts are nixpkgs' verbatim, invalid escape sequences (`"\\."` in a plain string) included.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")


def corpus_param(module: ModuleType) -> object:
    marks = [pytest.mark.nixos_qemu] if module.ON_QEMU else []
    return pytest.param(module, id=module.__name__.rsplit(".", 1)[-1], marks=marks)


def failure_text(error: BaseException | None) -> str:
    if error is None:
        return "the run failed without an error"
    return "".join(traceback.format_exception(error))


@pytest.mark.parametrize("module", [corpus_param(module) for module in corpus.modules()])
def test_nixpkgs_script(module: ModuleType, backend: BackendInfo, apt_mirror: None, tmp_path: Path) -> None:
    outcome = run_and_check(module.test, backend=backend.name, output_dir=tmp_path / "out")
    if outcome.passed:
        return
    pytest.fail(f"{module.test.name} failed (logs: {outcome.output_dir}):\n{failure_text(outcome.error)}")
