"""Everything a herd plugin may use: plugins import this module, and nothing else of herd.

A plugin implements the hooks declared in `herd.hooks.hookspecs` (each hook's docstring is its contract)
with functions marked `@hookimpl`, exchanges the value types below with the core, raises the errors
below, and may reuse the helpers below, which are the core's own means of running machines. The
rest of `herd` is the core's own and free to move: the lint environment fails a plugin of this
repository that imports it (the import-linter contract in pyproject.toml).

A backend's hooks that concern one machine (those given a launch plan or a handle) are called only
on the plugin that registered the machine's backend, with the handle that plugin's
`herd_machine_start` returned: they need not check whose machine it is, and may annotate the handle
with their own subclass of `MachineHandle`. Likewise a network's hooks are called only on the plugin
that registered its provider, with the handle that plugin's `herd_network_create` returned.

What it holds:

- `hookimpl`, the marker of hook implementations;
- the value types that pass between the core and plugins, which the hookspecs name: `BackendInfo`
  (with `Kind`, `Capability` and `HostCheck`), `LaunchPlan` (with `MachineSpec`, `MachineRoot`,
  `Overlay`, `Attachment`, `DeviceGrant` and `DeviceNode`), `MachineHandle` (with
  `ShellSession`, what its `open_session` gives), `ExecResult`, `StopMode`, and `granted_nodes`;
  for network providers `NetworkProviderInfo` (with `NetworkFeature`), `NetworkPlan`, `NicPlan`,
  `NetworkHandle` and `Impairment`; for image providers, `ImageRoot` (with `Tree` and `Layer`);
- the errors: `HerdError`, and `MachineError` for a machine that does not boot or is not running,
  whose messages reach the user as they are; `LinkError` from the link helper; `ImageError` for
  an image that cannot be had;
- the helpers: the command agent (`spawn_agent`, `Channel`, `ChannelClosed`, and the module
  `agent`, whose source a VM runs in its guest); cgroups (`Cgroup`, `hierarchies`,
  `unified_mounted`, and `LIMITING` and `v1_limiting_controllers` for the controllers that limit);
  `links` (network namespaces, veths, taps, bridges and queueing disciplines, through herd's link
  helper: backends plug NICs in with it, network providers make their networks); `hostimage`
  (units, masks and files of a prepared root, and its `BOOT_TARGET`); `idmap` (the host ids that
  confined machines are: `BASE`, `COUNT` of them, `shift_owners`, `twin_nodes`, id-mapped mounts);
  `seccomp` (the system-call filters of a machine's init, for the agent to take on); `libc` (the C
  library, loaded once, with the system-call constants herd uses and a checked call); the plumbing
  of a container that boots systemd: `AgentHandle` (a handle whose commands go through herd's
  agent), `Gate` (the FIFO a container waits on before its init starts), `NotifySocket` (with
  `NotifyTimeout` and `SenderExited`: waiting for systemd's READY=1), `machine_error`, `text_tail` and
  `log_tail` (a boot failure's message with the end of the console, or of a log file);
  `wait_for_exit` (a process's exit, on a pidfd); `state_root`, where every run keeps its state
  on this host, and `RUN_ID_LENGTH`, for a plugin that finds run ids in the names it gave;
- for image providers: `imagecache` (herd's cache of images and layers: entries built once,
  atomically, held while in use, listed and pruned by `herd images`; `cache_dir()`, where
  `$HERD_CACHE_DIR` puts it) and `packagelayer` (a cached layer of Debian packages over an image's
  root, built with the image's own apt and dpkg: `Base`, `ensure`).

The helper modules are exported whole, for their functions are named after what they act on
(`links.plug_veth`, `hostimage.add_unit`).
"""

from __future__ import annotations

from herd.command.agenthandle import AgentHandle
from herd.command.channel import Channel, ChannelClosed, spawn_agent
from herd.declare.netspec import Impairment
from herd.declare.spec import MachineSpec
from herd.errors import HerdError, ImageError, LinkError, MachineError
from herd.hooks.hookspecs import hookimpl
from herd.hooks.types import (
    Attachment,
    BackendInfo,
    Capability,
    DeviceGrant,
    DeviceNode,
    ExecResult,
    HostCheck,
    ImageRoot,
    Kind,
    LaunchPlan,
    Layer,
    MachineHandle,
    MachineRoot,
    NetworkFeature,
    NetworkHandle,
    NetworkPlan,
    NetworkProviderInfo,
    NicPlan,
    Overlay,
    ShellSession,
    StopMode,
    Tree,
    granted_nodes,
)
from herd.host import hostimage, idmap, imagecache, packagelayer
from herd.host.hostimage import BOOT_TARGET
from herd.host.idmap import COUNT, shift_owners, twin_nodes
from herd.host.rundir import ID_LENGTH as RUN_ID_LENGTH
from herd.host.rundir import state_root
from herd.linux import agent, libc, links, seccomp
from herd.linux.cgroups import LIMITING, Cgroup, hierarchies, unified_mounted, v1_limiting_controllers
from herd.linux.console import log_tail, machine_error, text_tail
from herd.linux.gate import Gate
from herd.linux.notify import NotifySocket, NotifyTimeout, SenderExited
from herd.linux.process import wait_for_exit

__all__ = [
    "BOOT_TARGET",
    "COUNT",
    "LIMITING",
    "RUN_ID_LENGTH",
    "AgentHandle",
    "Attachment",
    "BackendInfo",
    "Capability",
    "Cgroup",
    "Channel",
    "ChannelClosed",
    "DeviceGrant",
    "DeviceNode",
    "ExecResult",
    "Gate",
    "HerdError",
    "HostCheck",
    "ImageError",
    "ImageRoot",
    "Impairment",
    "Kind",
    "LaunchPlan",
    "Layer",
    "LinkError",
    "MachineError",
    "MachineHandle",
    "MachineRoot",
    "MachineSpec",
    "NetworkFeature",
    "NetworkHandle",
    "NetworkPlan",
    "NetworkProviderInfo",
    "NicPlan",
    "NotifySocket",
    "NotifyTimeout",
    "Overlay",
    "SenderExited",
    "ShellSession",
    "StopMode",
    "Tree",
    "agent",
    "granted_nodes",
    "hierarchies",
    "hookimpl",
    "hostimage",
    "idmap",
    "imagecache",
    "libc",
    "links",
    "log_tail",
    "machine_error",
    "packagelayer",
    "seccomp",
    "shift_owners",
    "spawn_agent",
    "state_root",
    "text_tail",
    "twin_nodes",
    "unified_mounted",
    "v1_limiting_controllers",
    "wait_for_exit",
]
