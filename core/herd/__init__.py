"""herd: multi-machine integration tests on containers and VMs.

Declare a `herd.Test`; run it with `herd run FILE`, from pytest, or with `Test.run()`. Plugin
authors: see `herd.hookspecs` and implement hooks with `@herd.hookimpl`.
"""

import pluggy

from herd.errors import (
    CapabilityError,
    CommandFailed,
    HerdError,
    MachineError,
    PluginError,
    SpecError,
    TestTimeout,
    WaitTimeout,
)
from herd.testdef import Test

hookimpl = pluggy.HookimplMarker("herd")

__all__ = [
    "CapabilityError",
    "CommandFailed",
    "HerdError",
    "MachineError",
    "PluginError",
    "SpecError",
    "Test",
    "TestTimeout",
    "WaitTimeout",
    "hookimpl",
]
