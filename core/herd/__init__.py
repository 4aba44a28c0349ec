"""herd: multi-machine integration tests on containers and VMs.

Declare a `herd.Test`; run it with `herd run FILE`, from pytest, or with `Test.run()`. Plugin
authors: everything a plugin may use is in `herd.plugin`; the hooks are declared in `herd.hooks.hookspecs`.

The names below load on first use, so that `herd` starts its helper processes before it imports
the rest of itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from herd.errors import (
        ArgumentError,
        CapabilityError,
        CommandFailed,
        HerdError,
        LinkError,
        MachineError,
        PluginError,
        PollingConditionFailed,
        SpecError,
        TestTimeout,
        WaitTimeout,
    )
    from herd.run.testdef import Test

__all__ = [
    "ArgumentError",
    "CapabilityError",
    "CommandFailed",
    "HerdError",
    "LinkError",
    "MachineError",
    "PluginError",
    "PollingConditionFailed",
    "SpecError",
    "Test",
    "TestTimeout",
    "WaitTimeout",
]


def __getattr__(name: str) -> Any:
    if name in __all__ and name.endswith(("Error", "Failed", "Timeout")):
        value = getattr(importlib.import_module("herd.errors"), name)
    elif name == "Test":
        value = importlib.import_module("herd.run.testdef").Test
    else:
        raise AttributeError(f"module 'herd' has no attribute {name!r}")
    globals()[name] = value
    return value
