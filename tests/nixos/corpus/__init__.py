"""Tests of nixpkgs' `nixos/tests`, restated for herd: each module declares one `herd.Test` named
`test` (so `herd run tests/nixos/corpus/<name>.py` runs it), with nixpkgs' script verbatim, and
machines that get their services as `packages`.

Besides `test`, a module says with `ON_QEMU` whether the `qemu` tox environment runs it on QEMU
VMs too.

The modules import nothing of herd's test suite, so that `herd run` loads them from anywhere.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from types import ModuleType


def modules() -> list[ModuleType]:
    """Every test module of the corpus, by name."""
    names = sorted(path.stem for path in Path(__file__).parent.glob("*.py") if path.stem != "__init__")
    with warnings.catch_warnings():  # herd.Test compiles each script as it is declared
        # The scripts are nixpkgs' verbatim, invalid escape sequences (`"\\."` in a plain string) included.
        warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
        return [importlib.import_module(f"{__name__}.{name}") for name in names]


def packages() -> list[str]:
    """The Debian packages the corpus's machines declare, each once."""
    return sorted(
        {name for module in modules() for machine in module.test.spec.machines for name in machine.packages}
    )
