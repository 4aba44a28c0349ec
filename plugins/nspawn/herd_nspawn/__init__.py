"""herd's systemd-nspawn backend: machines as containers that boot systemd on the host's kernel.

This module is the plugin (entry point `nspawn` in `herd.backends`): it registers the backend and
answers the hooks of its machines, which herd routes to it; `herd_nspawn.container` does the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herd.plugin import (
    Attachment,
    BackendInfo,
    Capability,
    ExecResult,
    Kind,
    LaunchPlan,
    StopMode,
    hookimpl,
    idmap,
)
from herd_nspawn import container
from herd_nspawn.checks import host_checks

NAME = "nspawn"
# The image kinds its machines boot: the host's OS and those of herd-images.
IMAGES = frozenset({"host", "debian", "oci", "docker", "nixos"})
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


@hookimpl
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
                    Capability.SHELL,
                }
            ),
            description="systemd-nspawn containers on the host's kernel; boot in a fraction of a second",
            priority=100,
            host_checks=host_checks,
            validate_options=validate_options,
            id_shift=idmap.BASE,
            images=IMAGES,
        )
    )


@hookimpl
def herd_machine_start(plan: LaunchPlan) -> container.Container:
    return container.start(plan)


@hookimpl
def herd_machine_execute(
    handle: container.Container, command: str, timeout: float | None, stdin: bytes
) -> ExecResult:
    return handle.execute(command, timeout, stdin)


@hookimpl
def herd_machine_stop(handle: container.Container, mode: StopMode, timeout: float) -> str:
    return handle.stop(mode, timeout)


@hookimpl
def herd_network_attach(handle: container.Container, attachment: Attachment) -> bool:
    handle.attach(attachment)
    return True


@hookimpl
def herd_network_detach(handle: container.Container, attachment: Attachment) -> bool:
    handle.detach(attachment)
    return True
