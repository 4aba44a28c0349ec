"""The neutral types that pass between the core and plugins.

The core describes *what* a machine needs (a root file system, network attachments, device grants);
a backend decides *how* (nspawn flags, QEMU devices, Docker options). Likewise the core plans a
run's networks (subnets, addresses, names) and a network provider makes them (bridges, tunnels).
Plugins import these types; the core never imports a plugin.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Protocol

from herd.declare.netspec import Impairment, gateway_address
from herd.declare.spec import MachineSpec
from herd.errors import CapabilityError
from herd.linux.cgroups import Cgroup


class Kind(enum.StrEnum):
    CONTAINER = "container"
    VM = "vm"


class Capability(enum.StrEnum):
    """What a backend can do beyond booting, executing, shutting down and crashing a machine."""

    SYSTEMD = "systemd"  # systemd is the machine's init: services, units, wait_for_unit, systemctl
    REBOOT = "reboot"  # machine.reboot()
    # send_chars, send_console: typing on the console, and `herd_machine_console` while it runs
    # (reading the console needs no capability: every backend writes console.log)
    CONSOLE = "console"
    MONITOR = "monitor"  # send_monitor_command, wait_for_qmp_event: QEMU's monitor
    KEYBOARD = "keyboard"  # send_key
    SCREENSHOT = "screenshot"  # screenshot
    KERNEL = "kernel"  # its own kernel: modules, sysctls, kernel command line, virtual terminals
    SUID = "suid"  # SUID binaries and file capabilities work
    HOTPLUG = "hotplug"  # connect/disconnect networks while running
    DEVICES = "devices"  # host device nodes granted to the machine
    PCI = "pci"  # PCI functions passed through
    # The machine fields memory, cpus, pids and disk bound what the machine's processes, each
    # command herd runs included, use together.
    LIMITS = "limits"
    # Root in a machine is not root on the host: every process in it, each command herd runs
    # included, is confined (a user namespace, the machine's capabilities and system-call filter, or
    # a VM), and it has limits.
    CONFINED = "confined"
    # Interactive sessions on a terminal in a running machine: `herd shell`, shell_interact
    # (`MachineHandle.open_session`)
    SHELL = "shell"


@dataclass(frozen=True)
class HostCheck:
    """One line of `herd doctor`: what was checked, whether it is fine, and how to fix it. A
    `warning` is fine for running tests, yet something the user must know."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False


def _no_options(options: Mapping[str, Any]) -> list[str]:
    return [f"unknown option {name!r}: this backend takes no options" for name in options]


def _any_machine(machine: MachineSpec) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class BackendInfo:
    """A backend as it registers itself (see `herd_register_backends`).

    `priority` picks the default backend: when a run names none, the installed backend with the
    highest priority boots the machines that name none either. `validate_options` checks a machine's
    `options` field and returns one message per problem. `validate_machine` checks the machine's
    other fields, which the core has validated already, against what this backend can give (a VM's
    least memory, say), and returns (field name, message) per problem. `id_shift` is the host id
    that root in the backend's machines is (`herd.host.idmap.BASE` for machines in user namespaces, 0
    where a machine's ids are the host's): the host image's files are prepared to be owned as the
    machines see them. `images` are the image kinds its machines boot (`herd.declare.spec.image_kind`:
    "host", "debian", "oci", …): herd refuses, before anything boots, a machine whose image is of
    another kind.
    """

    name: str
    kind: Kind
    capabilities: frozenset[Capability]
    description: str
    priority: int = 0
    host_checks: Callable[[], Iterable[HostCheck]] = lambda: ()
    validate_options: Callable[[Mapping[str, Any]], list[str]] = _no_options
    validate_machine: Callable[[MachineSpec], list[tuple[str, str]]] = _any_machine
    id_shift: int = 0
    images: frozenset[str] = frozenset({"host"})


@dataclass(frozen=True)
class Overlay:
    """A view at `target` of `lowers`, host directories stacked topmost first (as overlayfs's
    `lowerdir` lists them), writing into `upper`; read-only where `upper` is None.

    The lowers are owned as the machine sees them already (herd prepares them for the backend's
    `BackendInfo.id_shift`): a backend mounts them as they are, never id-mapped.
    """

    lowers: tuple[str, ...]
    upper: Path | None
    target: str


@dataclass(frozen=True)
class MachineRoot:
    """The file system a machine boots, described for a backend to assemble.

    `directory` becomes the machine's `/` (it holds the mount points and top-level links);
    `read_only_binds` and `binds` are (host path, machine path) pairs; `overlays` are mounted over
    their targets. A read-only bind's host directory is owned by host ids, as the host's own /usr
    is: a backend whose machines are confined (`BackendInfo.id_shift`) binds it id-mapped. An
    overlay's lowers are owned as the machine sees them already. Mount the read-only binds first,
    then the overlays, then the binds.
    """

    directory: Path
    read_only_binds: tuple[tuple[str, str], ...]
    overlays: tuple[Overlay, ...]
    binds: tuple[tuple[str, str], ...] = ()
    # What the machine runs as its init, where its image says (`ImageRoot.init`); else the
    # backend boots the root's systemd.
    init: str | None = None
    unit_directory: str = "systemd/system"  # below /etc: where herd's units go (`ImageRoot`)


@dataclass(frozen=True)
class Layer:
    """One directory tree of an image on the host, read-only once made.

    `id_shift` says whose ids its files carry: 0 when they are owned as the image's own files are
    (root's are host id 0, as on the host), else the host id that root is in the machines it was
    prepared for (`herd.host.idmap`). herd uses a layer as it is for a machine of that shift, and
    through an id-mapped view of it for a confined machine when its `id_shift` is 0.
    """

    path: str
    id_shift: int = 0


@dataclass(frozen=True)
class Tree:
    """A directory of a machine (`target`: "/usr", "/etc") made of `layers`, topmost first: a file
    in an upper layer hides the same path below (overlayfs whiteouts and opaque directories in a
    layer are honoured)."""

    target: str
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class ImageRoot:
    """A machine's image resolved to directories on the host (see `herd_image_resolve`): what every
    machine of that image starts from, shared by them, never written.

    `description` names it in messages and the log ("host", "host + redis-server"). `top_level`
    lists the image's top-level entries as (name, link target), the target None for a directory:
    each machine's root gets the links, and a mount point for each directory. `shared` trees are
    read-only in every machine (/usr, /opt); `overlaid` trees are copy-on-write, each machine
    writing into a layer of its own (/etc, /var; every image has /etc there, where herd writes what
    makes each machine itself). A top-level directory that is in neither is the machine's own,
    empty at first.
    """

    description: str
    top_level: tuple[tuple[str, str | None], ...]
    shared: tuple[Tree, ...]
    overlaid: tuple[Tree, ...]
    # The program a machine of the image runs as its init, for an image whose init is not systemd
    # itself (a NixOS system's stage 2, which execs systemd once it has laid the system out); None:
    # the image's /lib/systemd/systemd. `unit_directory` (below /etc) is where herd places its
    # units and the boot target: for an image whose init owns /etc/systemd/system (NixOS's
    # activation links it to the system's units), one that systemd also reads.
    init: str | None = None
    unit_directory: str = "systemd/system"

    def tree(self, target: str) -> Tree | None:
        """The shared or overlaid tree mounted at `target`, if the image has one."""
        return next((t for t in (*self.shared, *self.overlaid) if t.target == target), None)


@dataclass(frozen=True)
class Attachment:
    """One NIC of a machine on one network, as the network's provider placed it.

    `bridge` is the host bridge the NIC's host side goes on; `host_link` is the name reserved for
    that host side (a veth end or a tap); `guest_link` is the interface name inside the machine;
    `mac` its MAC address; `addresses` are in CIDR notation, the IPv4 one first. The core plans
    `network`, `guest_link` and `addresses`; the provider chooses `bridge`, `host_link` and `mac`
    (see `herd_network_attachment`); the machine's backend plugs it in.
    """

    network: str
    bridge: str
    host_link: str
    guest_link: str
    mac: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class DeviceNode:
    """A device node to make available in a machine (`path` on the host, `guest_path` inside)."""

    path: str
    guest_path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    access: str = "rwm"


@dataclass(frozen=True)
class DeviceGrant:
    """A device request turned into what a backend applies (see `herd_device_grant`)."""

    request: str
    nodes: tuple[DeviceNode, ...] = ()
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (host path, machine path, read-only)
    environment: Mapping[str, str] = field(default_factory=dict)
    pci_functions: tuple[str, ...] = ()


def granted_nodes(grants: Iterable[DeviceGrant]) -> list[DeviceNode]:
    """The grants' device nodes, once each (two grants often share control nodes)."""
    found: dict[str, DeviceNode] = {}
    for grant in grants:
        for node in grant.nodes:
            found.setdefault(node.guest_path, node)
    return list(found.values())


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a backend needs to boot one machine of a run.

    `state_dir` is the machine's scratch directory (removed at teardown); `log_dir` is its directory
    in the run's output (kept): a backend writes the console there, and the journal lands there
    through `root.binds`. A backend that runs the machine as host processes starts them inside
    `cgroup` (the driver creates it before the start hook), so that the run's cleanup finds every
    one of them.
    """

    run_id: str
    machine: MachineSpec
    index: int
    state_dir: Path
    log_dir: Path
    root: MachineRoot
    attachments: tuple[Attachment, ...]
    cgroup: Cgroup
    grants: tuple[DeviceGrant, ...] = ()

    @property
    def backend(self) -> str:
        assert self.machine.backend is not None, "the driver resolves the backend before planning"
        return self.machine.backend


class ShellSession(Protocol):
    """An interactive session on a terminal of its own in a running machine: a login shell, or one
    command, whose processes all end when it does (`MachineHandle.open_session`).

    `events` yields what the terminal prints (bytes), then the shell's exit status (an int), or
    None when the machine went away first."""

    @property
    def events(self) -> SimpleQueue[bytes | int | None]: ...

    def write(self, data: bytes) -> None:
        """Type `data` on the terminal."""

    def resize(self, rows: int, cols: int) -> None:
        """Give the terminal a new size (its foreground job gets SIGWINCH)."""

    def hang_up(self) -> None:
        """End the session, as closing a terminal window does: every process of it ends."""


@dataclass
class MachineHandle:
    """What a backend returns for a running machine; backends subclass it with their own state.

    `access` is a host command that opens a shell in the machine, shown to users who keep machines
    running (`--keep`) where the backend cannot open a session itself (`open_session`).
    """

    backend: str
    name: str
    access: str = field(default="", kw_only=True)

    def open_session(self, command: str | None, term: str, rows: int, cols: int) -> ShellSession:
        """A login shell in the machine (or `command`, run by one with `-c`) on a new terminal of
        `rows` and `cols`, its TERM `term`. A backend that declares `shell` overrides it
        (`AgentHandle` does); the core asks no other."""
        raise CapabilityError(f"machine {self.name}: backend {self.backend!r} cannot open a shell session")


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one command: exact bytes of stdout and stderr, and the exit status.

    `status` follows the shell: 128+N when a signal N ended the command. `timed_out` is true when
    the backend killed the command at its timeout.
    """

    status: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class StopMode(enum.StrEnum):
    CLEAN = "clean"  # ask the machine's init to power off, escalate if it stalls
    CRASH = "crash"  # kill at once, as a power cut would
    # The run is over and the machine will not boot again: stop it as fast as keeps what the run's
    # output holds (its journal, its console). A backend whose power-off is cheap treats it as CLEAN.
    TEARDOWN = "teardown"


class NetworkFeature(enum.StrEnum):
    """What a network provider can do to its networks while machines run, beyond carrying their
    traffic: the `Machine` methods and the declaration fields that need it fail clearly on a
    network whose provider lacks it."""

    BLOCK = "block"  # block(), unblock(): cut a machine's NIC off its network
    IMPAIR = "impair"  # impair(), unimpair() and a declared delay, jitter, loss or rate
    FORWARD = "forward"  # forward_port() and the machine field forward_ports


def _can_apply(impairment: Impairment) -> str | None:
    return None


@dataclass(frozen=True)
class NetworkProviderInfo:
    """A network provider as it registers itself (see `herd_register_network_providers`).

    `name` is what a network declaration names in `provider` (networks that name none are
    `bridge`'s). `host_checks` are its lines of `herd doctor`. `impairment_problem` says why this
    host cannot apply a declared impairment (None when it can); the run is refused before anything
    starts when it says so.
    """

    name: str
    description: str
    features: frozenset[NetworkFeature] = frozenset()
    host_checks: Callable[[], Iterable[HostCheck]] = lambda: ()
    impairment_problem: Callable[[Impairment], str | None] = _can_apply


@dataclass(frozen=True)
class NetworkPlan:
    """One network of a run, as the core planned it, for its provider to make.

    `index` is its position among the run's networks (unique in the run: providers name things
    after it). The machines' addresses are in `subnet` (and `subnet6`, when the network has IPv6);
    `gateway`, the last host address of `subnet`, is no machine's: it is kept for the provider's
    own use on the network (the bridge provider's port-forward gateway takes it).
    """

    name: str
    provider: str
    index: int
    subnet: ipaddress.IPv4Network
    subnet6: ipaddress.IPv6Network | None

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return gateway_address(self.subnet)


@dataclass(frozen=True)
class NicPlan:
    """One machine's NIC on one network, as the core planned it: which machine (`machine_index`
    is its position in the test, unique in the run), the interface name inside it and its
    addresses in CIDR, the IPv4 one first. Every machine has one on every network of the test,
    whether it joins the network at boot or may be connected to it later."""

    machine: str
    machine_index: int
    network: str
    guest_link: str
    addresses: tuple[str, ...]


@dataclass
class NetworkHandle:
    """What a provider returns for the networks it made for a run (`herd_network_create`);
    providers subclass it with their own state. `provider` routes the hooks given it."""

    provider: str
    run_id: str
    networks: tuple[NetworkPlan, ...]
