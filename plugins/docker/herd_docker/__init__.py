"""herd's Docker backend: machines as Docker containers that boot systemd on herd's own networks.

This module is the plugin (entry point `docker` in `herd.backends`): it registers the backend and
answers the hooks of its machines, which herd routes to it; `herd_docker.container` does the work.
It imports nothing of the docker SDK: that happens when a machine first needs the engine.
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
    MachineSpec,
    StopMode,
    hookimpl,
)
from herd_docker import container, engine
from herd_docker.checks import host_checks

NAME = "docker"
# The image kinds its containers boot: the host's OS and herd-images' roots with systemd at
# /lib/systemd/systemd. Not NixOS systems: a container starts through the root's /bin/sh, which a
# NixOS root has only once its own init has activated it.
IMAGES = frozenset({"host", "debian", "oci", "docker"})
OPTIONS = {"image": "a local image with systemd to boot instead of the host's OS (never pulled)"}


def validate_options(options: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, value in options.items():
        if name not in OPTIONS:
            known = ", ".join(f"{key} ({text})" for key, text in OPTIONS.items())
            problems.append(f"unknown option {name!r}; docker options: {known}")
        elif name == "image" and not (isinstance(value, str) and value.strip()):
            problems.append(f"image: expected the name of a local image, got {value!r}")
    return problems


def validate_machine(machine: MachineSpec) -> list[tuple[str, str]]:
    if machine.packages and "image" in machine.options:
        return [("packages", "packages go over the host image, not over a Docker image (option 'image')")]
    return []


@hookimpl
def herd_register_backends(register: Any) -> None:
    limits, remapped_root = container.limits_hold(), engine.remapped_root()
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
                    Capability.SHELL,
                }
                | ({Capability.LIMITS} if limits else set())
                | ({Capability.CONFINED} if limits and remapped_root is not None else set())
            ),
            id_shift=remapped_root or 0,
            description="Docker containers booting systemd, on herd's bridges (a local engine)",
            host_checks=host_checks,
            validate_options=validate_options,
            validate_machine=validate_machine,
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


@hookimpl
def herd_run_leftovers(run_id: str) -> list[str]:
    return [f"docker container {name} ({short_id})" for name, short_id in engine.run_containers(run_id)]


@hookimpl
def herd_reap(run_id: str) -> list[str]:
    return engine.remove_run_containers(run_id)
