"""herd's systemd-nspawn backend: machines as containers that boot systemd on the host's kernel.

This module is the plugin (entry point `nspawn` in `herd.backends`): it registers the backend and
answers the hooks for its own machines; `herd_nspawn.container` does the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import herd
from herd import idmap
from herd.backend import (
    Attachment,
    BackendInfo,
    Capability,
    ExecResult,
    Kind,
    LaunchPlan,
    MachineHandle,
    StopMode,
)
from herd_nspawn import container
from herd_nspawn.checks import host_checks

NAME = "nspawn"
OPTIONS = {"extra_args": "extra systemd-nspawn arguments, a list of strings"}


def validate_options(options: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, value in options.items():
        if name not in OPTIONS:
            known = ", ".join(f"{key} ({text})" for key, text in OPTIONS.items())
            problems.append(f"unknown option {name!r}; nspawn options: {known}")
        elif name == "extra_args" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            problems.append(f"extra_args: expected a list of strings, got {value!r}")
    return problems


@herd.hookimpl
def herd_register_backends(register: Any) -> None:
    register(
        BackendInfo(
            name=NAME,
            kind=Kind.CONTAINER,
            capabilities=frozenset(
                {
                    Capability.SYSTEMD,
                    Capability.SUID,
                    Capability.HOTPLUG,
                    Capability.DEVICES,
                    Capability.LIMITS,
                    Capability.CONFINED,
                }
            ),
            description="systemd-nspawn containers on the host's kernel; boot in a fraction of a second",
            priority=100,
            host_checks=host_checks,
            validate_options=validate_options,
            id_shift=idmap.BASE,
        )
    )


@herd.hookimpl
def herd_machine_start(plan: LaunchPlan) -> MachineHandle | None:
    if plan.backend != NAME:
        return None
    return container.start(plan)


@herd.hookimpl
def herd_machine_execute(
    handle: MachineHandle, command: str, timeout: float | None, stdin: bytes
) -> ExecResult | None:
    if not isinstance(handle, container.Container):
        return None
    return handle.execute(command, timeout, stdin)


@herd.hookimpl
def herd_machine_stop(handle: MachineHandle, mode: StopMode, timeout: float) -> str | None:
    if not isinstance(handle, container.Container):
        return None
    return handle.stop(mode, timeout)


@herd.hookimpl
def herd_network_attach(handle: MachineHandle, attachment: Attachment) -> bool | None:
    if not isinstance(handle, container.Container):
        return None
    handle.attach(attachment)
    return True


@herd.hookimpl
def herd_network_detach(handle: MachineHandle, attachment: Attachment) -> bool | None:
    if not isinstance(handle, container.Container):
        return None
    handle.detach(attachment)
    return True
