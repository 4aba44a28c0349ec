"""Every hook a herd plugin can implement: this module is the plugin author's reference.

A plugin is a module (or object) named by an entry point in the group `herd.backends` (machine
backends) or `herd.plugins` (device, image and network providers). Implement a hook by defining a
function of the same name decorated with `herd.plugin.hookimpl`; take only the parameters you need.
A plugin imports `herd.plugin` and nothing else of herd: it holds the types named here.

The hooks of one machine, those given its launch plan or its handle, go to one plugin: the one that
registered the machine's backend (`herd_register_backends`). It gets only its own machines, so it
may annotate the handle with its own subclass of `MachineHandle`. Of the other hooks, those marked
*first result* stop at the first plugin that returns something other than None (answer None for a
request that is not yours); the rest are called on every plugin.

A typical backend's life, for one machine:

1. `herd_register_backends` once, when the plugin loads;
2. `herd_machine_start` with the launch plan (root file system, network attachments, grants);
3. `herd_machine_execute` for every command of the test script;
4. `herd_network_attach` / `herd_network_detach` to plug a running machine in or out;
5. `herd_machine_stop`, clean or crash, from the script or at teardown.

An image provider (a plugin of `herd.plugins`) answers for the kinds of image it offers
(`herd_image_kinds`): it checks a machine's ``image`` and ``packages`` before the run
(`herd_image_check`) and resolves them to directories on the host before any machine boots
(`herd_image_resolve`), which herd turns into each machine's root. The core's own provider serves
the ``host`` image. A backend boots the kinds its `BackendInfo.images` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from herd.declare.spec import MachineSpec
    from herd.hooks.types import (
        Attachment,
        BackendInfo,
        Capability,
        DeviceGrant,
        ExecResult,
        ImageRoot,
        LaunchPlan,
        MachineHandle,
        StopMode,
    )

__all__ = [
    "herd_device_grant",
    "herd_image_check",
    "herd_image_kinds",
    "herd_image_resolve",
    "herd_list_devices",
    "herd_machine_console",
    "herd_machine_execute",
    "herd_machine_monitor_command",
    "herd_machine_qmp_events",
    "herd_machine_reboot",
    "herd_machine_screenshot",
    "herd_machine_send_chars",
    "herd_machine_send_keys",
    "herd_machine_start",
    "herd_machine_stop",
    "herd_network_attach",
    "herd_network_detach",
    "herd_reap",
    "herd_register_backends",
    "herd_run_leftovers",
]

hookspec = pluggy.HookspecMarker("herd")
hookimpl = pluggy.HookimplMarker("herd")
"""Marks a function (or method) as the implementation of the herd hook of the same name."""


@hookspec
def herd_register_backends(register: Callable[[BackendInfo], None]) -> None:
    """Describe the backends this plugin provides.

    Called once when the plugin is loaded. Call ``register(BackendInfo(...))`` for each backend:
    its name (what users write in ``backend=``), its kind (container or VM), its capabilities, the
    checks ``herd doctor`` runs for it, and the validator of its machine ``options``. A Machine
    method that needs a capability the backend does not declare fails before doing anything, naming
    a backend that has it; a backend that declares a capability must pass the conformance kit's
    cases for it.
    """


@hookspec(firstresult=True)
def herd_machine_start(plan: LaunchPlan) -> MachineHandle | None:
    """Boot one machine and return its handle once it is ready to execute commands.

    Called on the plugin that registered ``plan.backend`` (one that registers several tells them
    apart by it). The handle's ``backend`` is ``plan.backend``: herd routes the handle's hooks by
    it. ``plan.root`` describes the file system to
    assemble (a directory for ``/``, read-only binds, copy-on-write overlays, writable binds);
    ``plan.attachments`` lists the NICs to plug in at creation time, the same operation as
    `herd_network_attach`; ``plan.grants`` lists device grants to apply. Write the console to
    ``plan.log_dir / "console.log"``.

    Ready means the machine's init reached herd's boot target (``herd.target``): never sleep a fixed
    time. Give up after ``plan.machine.boot_timeout`` seconds, raising `herd.plugin.MachineError` with the
    tail of the console in the message. The driver calls this hook for several machines at once from
    different threads, and calls it again after a clean stop to boot the machine anew on the same
    root. Whatever you create, remove it in `herd_machine_stop` or keep it under
    ``plan.state_dir``, which the driver removes at teardown.
    """


@hookspec(firstresult=True)
def herd_machine_execute(
    handle: MachineHandle, command: str, timeout: float | None, stdin: bytes
) -> ExecResult | None:
    """Run ``command`` with bash (``set -euo pipefail``) as root in the running machine.

    Return the exact bytes the command wrote to stdout and
    stderr and its exit status. ``stdin`` is fed to the command (empty: the command reads end of
    file). Return as soon as the command's shell exits, even when it left processes in the
    background that still hold its output open. When ``timeout`` (seconds) passes, kill the command's
    process group and return ``ExecResult(..., timed_out=True)``. Calls may come from several threads
    at once. Raise `herd.plugin.MachineError` when the machine is not running.
    """


@hookspec(firstresult=True)
def herd_machine_stop(handle: MachineHandle, mode: StopMode, timeout: float) -> str | None:
    """Stop a machine and release what its start created.

    ``StopMode.CLEAN``: ask the machine's init to power off and wait up to ``timeout`` seconds;
    when it stalls, escalate (terminate, then kill) rather than wait without bound.
    ``StopMode.CRASH``: kill it at once, as a power cut would.
    ``StopMode.TEARDOWN``: the run is over (the driver's teardown) and the machine will not boot
    again. Stop it as fast as keeps what the run's output holds: where a clean power-off is cheap,
    do just that, as for ``CLEAN`` (a backend that only tells ``CRASH`` from the rest does); where
    it costs seconds, flush what the machine's logs need and kill it. Whatever the mode, return
    only when its processes are gone, and return a few words for the log on how it stopped
    ("powered off in 0.12 s", "killed"). Called for a machine that already died too: then only
    clean up.
    """


@hookspec(firstresult=True)
def herd_network_attach(handle: MachineHandle, attachment: Attachment) -> bool | None:
    """Plug a running machine into a network (hot-plug).

    The bridge ``attachment.bridge`` exists already. Create the host side link named
    ``attachment.host_link`` on the bridge and the interface ``attachment.guest_link`` inside the
    machine with ``attachment.mac`` and ``attachment.addresses``, up. Return True. Backends that
    declare the ``hotplug`` capability must implement it; the same operation plugs a machine's
    networks at creation time (`herd_machine_start`).
    """


@hookspec(firstresult=True)
def herd_network_detach(handle: MachineHandle, attachment: Attachment) -> bool | None:
    """Unplug a running machine from a network: remove both sides of the link; return True."""


@hookspec(firstresult=True)
def herd_device_grant(
    machine: MachineSpec, request: str, capabilities: frozenset[Capability]
) -> DeviceGrant | None:
    """Turn a device request into a neutral grant. *First result.*

    ``request`` is what the user wrote in the machine's ``devices``: a CDI name such as
    ``"nvidia.com/gpu=0"``, a host path such as ``"/dev/fuse"``, or ``"pci:0000:01:00.0"``. Answer
    with the device nodes, mounts, environment and PCI functions it stands for, or None when the
    request is not yours. ``capabilities`` are those of the machine's backend: skip host checks
    for what it cannot apply anyway (herd then reports the missing capability, which is the
    user's real problem). Backends apply grants; providers never touch machines.
    """


@hookspec
def herd_list_devices(offer: Callable[[str, str], None], problem: Callable[[str], None]) -> None:
    """Say what this plugin can grant on this host, for ``herd devices``.

    Call ``offer(request, description)`` for each request a machine's ``devices`` may name that you
    would grant here, with a few words on what it stands for; call ``problem(message)`` for each
    source of devices you cannot use (a file you cannot read), naming it and what is wrong. Called
    on every plugin; grant nothing and touch no machine.
    """


@hookspec
def herd_image_kinds(offer: Callable[[str, str], None]) -> None:
    """Say which image kinds this plugin provides: call ``offer(kind, description)`` for each.

    A machine's ``image`` is ``"host"`` (the default), ``"KIND:VALUE"`` (``"debian:bookworm"``,
    ``"oci:/srv/app.tar"``) or ``{KIND: VALUE}`` (``{"nixos": "/nix/store/…"}``); its kind is the
    part before the colon, or the mapping's key (`herd.declare.spec.image_kind`). The description
    says what a value looks like ("debian:SUITE, a Debian suite the mirror holds, built with
    mmdebstrap"). herd lists the offers when a machine names a kind nobody provides, and in
    ``herd plugins``. Called on every plugin.
    """


@hookspec(firstresult=True)
def herd_image_check(machine: MachineSpec, kind: str) -> list[tuple[str, str]] | None:
    """Check a machine's ``image`` and ``packages`` before the run starts. *First result.*

    Answer None when ``kind`` is not one you provide; otherwise what is wrong with the machine's
    image and packages, as (field name, message) pairs, none when nothing is (herd adds the test
    and the machine). Build, download or unpack nothing: this is called for every machine of a
    test, also when it then does not run; cheap checks only (the value's form, a path that does not
    exist, packages on an image without a package manager).
    """


@hookspec(firstresult=True)
def herd_image_resolve(
    machine: MachineSpec, kind: str, id_shift: int, progress: Callable[[str], None]
) -> ImageRoot | None:
    """Resolve a machine's ``image`` and ``packages`` to directories on the host. *First result.*

    Answer None when ``kind`` is not yours. Otherwise return the image's root: its top-level
    entries, the trees every machine of it shares read-only (/usr) and those each machine gets
    copy-on-write (/etc, /var), each a stack of layers, topmost first (`herd.plugin.ImageRoot`).
    Called once per run for each distinct image, packages and ``id_shift`` (the host id that
    root is in the machine's backend, `BackendInfo.id_shift`), before any machine boots, from
    several threads at once.

    Build what is missing or take it from the cache (`herd.plugin.imagecache`: entries made
    atomically, built once when runs need one at the same moment, under a key of everything they
    depend on, and held for this process's life so that no prune removes one under a running
    machine). The layers must not change while a machine may use them: a new content is a new
    entry. Report each step of a build through ``progress`` ("downloading 3 of 12", "installing
    redis-server"): herd logs it with the time since the build began, and repeats the last step
    while a step lasts. Raise `herd.plugin.ImageError` when the image cannot be had, with the
    tool's own message and the field at fault; leave nothing half-built that a later run would use.

    Every backend that declares the kind (`BackendInfo.images`) boots the result: herd turns it
    into the machine's `MachineRoot`, with the machine's own files and units.
    """


@hookspec
def herd_run_leftovers(run_id: str) -> list[str]:
    """Report what this plugin made for run ``run_id`` that still exists on the host.

    The core finds what it can by the run's markers (links, state directory, cgroups, mounts,
    firewall rules, processes); a plugin that makes things the core cannot see (containers of a
    Docker engine, libvirt domains) returns one short description for each of them still there.
    The conformance kit fails a backend whose runs leave anything behind.
    """


@hookspec
def herd_reap(run_id: str) -> list[str]:
    """Remove what this plugin made for the dead run ``run_id``; return a description of each item.

    Called by ``herd clean`` and at the start of every run, for runs whose process died without
    tearing down (a SIGKILL, an out-of-memory kill, a power loss). By then the core has killed
    the run's processes (its cgroups) and deleted its links; remove what the core cannot see (a
    Docker engine's containers, libvirt domains), found by the run id you tagged them with. Never
    called for a live run.
    """


@hookspec(firstresult=True)
def herd_machine_reboot(handle: MachineHandle, timeout: float) -> str | None:
    """Reboot a running machine cleanly and return once it is ready again.

    For backends that declare the ``reboot`` capability. Return a few words for the log.
    """


@hookspec(firstresult=True)
def herd_machine_console(handle: MachineHandle) -> str | None:
    """Everything the running machine has written to its console since it started, as text.

    For backends that declare the ``console`` capability: `wait_for_console_text` and
    `get_console_log` ask it while the machine runs. For other backends, and for a machine that
    is not running, herd reads the ``console.log`` that `herd_machine_start` writes.
    """


@hookspec(firstresult=True)
def herd_machine_send_chars(handle: MachineHandle, chars: str) -> bool | None:
    """Type ``chars`` on the machine's console; return True. (capability ``console``)"""


@hookspec(firstresult=True)
def herd_machine_send_keys(handle: MachineHandle, keys: list[str]) -> bool | None:
    """Press ``keys`` together on the machine's keyboard, then release them; return True.

    Keys are QEMU key names ("ctrl", "alt", "delete", "ret", "a"); capability ``keyboard``.
    """


@hookspec(firstresult=True)
def herd_machine_screenshot(handle: MachineHandle, path: Path) -> bool | None:
    """Save the machine's screen to ``path`` as PNG; return True. (capability ``screenshot``)"""


@hookspec(firstresult=True)
def herd_machine_monitor_command(handle: MachineHandle, command: str) -> str | None:
    """Run ``command`` on the machine's human monitor (QEMU's HMP: "info status", "stop") and
    return what it printed. (capability ``monitor``)"""


@hookspec(firstresult=True)
def herd_machine_qmp_events(handle: MachineHandle, timeout: float) -> list[dict[str, Any]] | None:
    """The QMP events the machine's QEMU sent since the last call, oldest first; when there are
    none, wait up to ``timeout`` seconds for one (an empty list then). Each is the event's JSON
    object ({"event": "STOP", "data": {...}, "timestamp": {...}}). (capability ``monitor``)"""
