"""The `host` image: a machine that runs the host's own OS, assembled without copying it.

/usr (and /opt, /nix where present) is shared read-only; /etc and /var are copy-on-write overlays of
what the machine may see of the host's (`herd.host.hostsnapshot`: its packaged configuration, never its
secrets or state), each with a per-machine upper layer. herd writes into the upper layers what makes the
machine itself (hostname, hosts, machine-id, an empty fstab, the boot target and the test's units and
files) and hides the host's enabled units by making every `*.wants`/`*.requires` directory of
/etc/systemd/system opaque. systemd then boots `herd.target`, which pulls in only what the test asks
for: never the host's enabled services, never a wait on network-online. It pulls in
multi-user.target too, so that a script can wait for it as on a NixOS machine, but of what the
host's packages have that target want only `MULTI_USER_KEPT` starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from herd.declare.spec import UNPLACEABLE, MachineSpec
from herd.errors import HerdError
from herd.hooks.types import DeviceGrant, MachineRoot, Overlay
from herd.host.idmap import shift_owners

BOOT_TARGET = "herd.target"
# systemd reads manager settings from here: DefaultEnvironment= reaches every unit it starts.
GRANT_ENVIRONMENT = "/etc/systemd/system.conf.d/herd-devices.conf"
# Shared read-only when the host has them as directories (bin, sbin and lib are links to usr/ on a
# merged-/usr system, and the links are then copied as they are).
SHARED_READ_ONLY = ("usr", "opt", "nix", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
OVERLAID = ("etc", "var")
HOST_UNIT_DIR = Path("/etc/systemd/system")
VENDOR_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
MULTI_USER_TARGET = "multi-user.target"
# Of the units the host's packages have multi-user.target want (dbus, systemd-logind, getty.target,
# systemd-update-utmp-runlevel, ...), the one a machine starts: it lets users other than root log
# in. The others are masked as its dependencies, not as units: dbus and logind still start on
# demand, through dbus.socket, when something uses the bus (`su` opening a session), and a test
# may list any of them in `services`.
MULTI_USER_KEPT = frozenset({"systemd-user-sessions.service"})
# systemd's generators that have nothing to do in a herd machine (its fstab and crypttab are empty,
# it has no disks, consoles or firmware of its own). Masked, they save tens of milliseconds of boot.
# Generators that packages ship (postgresql's, for one) still run, and so do the SysV and
# rc.local compatibility generators, which make units a machine may be asked to start.
IDLE_GENERATORS = (
    "systemd-bless-boot-generator",
    "systemd-cryptsetup-generator",
    "systemd-fstab-generator",
    "systemd-getty-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-integritysetup-generator",
    "systemd-system-update-generator",
    "systemd-veritysetup-generator",
)
DEFAULT_LOCALE = "LANG=C.UTF-8\n"
# Top-level directories every machine has, empty unless something is mounted on them. /root and
# /home hide the host's private files; /tmp and /run are fresh file systems inside the machine.
EMPTY_DIRECTORIES = ("root", "home", "tmp", "run", "srv", "mnt", "media", "proc", "sys", "dev")


@cache
def host_top_level() -> tuple[tuple[str, str | None], ...]:
    """(name, symlink target or None) of the host's top-level directories and links."""
    entries: list[tuple[str, str | None]] = []
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.is_symlink():
            entries.append((entry.name, os.readlink(entry.path)))
        elif entry.is_dir(follow_symlinks=False):
            entries.append((entry.name, None))
    return tuple(entries)


@cache
def host_unit_dependency_dirs() -> tuple[str, ...]:
    """The host's `*.wants` and `*.requires` directories under /etc/systemd/system."""
    if not HOST_UNIT_DIR.is_dir():
        return ()
    return tuple(
        sorted(
            entry.name
            for entry in os.scandir(HOST_UNIT_DIR)
            if entry.is_dir() and entry.name.endswith((".wants", ".requires"))
        )
    )


@cache
def vendor_wants(target: str) -> tuple[str, ...]:
    """The units that the host's packages have `target` want (its `.wants` directories under
    /usr/lib/systemd/system and /lib/systemd/system)."""
    names: set[str] = set()
    for directory in VENDOR_UNIT_DIRS:
        wants = directory / f"{target}.wants"
        if wants.is_dir():
            names.update(entry.name for entry in os.scandir(wants))
    return tuple(sorted(names))


def _mask_vendor_wants(units: Path, target: str, kept: frozenset[str]) -> None:
    """Keep `target` from pulling in what the host's packages have it want, but for `kept`: a
    link to /dev/null in its .wants directory in /etc masks the dependency, not the unit."""
    wants = units / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for name in vendor_wants(target):
        if name not in kept:
            os.symlink("/dev/null", wants / name)


def boot_target(machine: MachineSpec) -> str:
    wants = " ".join(
        ("network.target", "network-online.target", MULTI_USER_TARGET, *machine.units_to_start())
    )
    return (
        "[Unit]\n"
        f"Description=herd machine {machine.name}\n"
        "Requires=basic.target\n"
        "After=basic.target\n"
        f"Wants={wants}\n"
        "AllowIsolate=yes\n"
    )


def _write(path: Path, content: bytes | str, mode: int = 0o644) -> None:
    """Write a file into a layer, replacing whatever was at that path, never through a link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    data = content.encode() if isinstance(content, str) else content
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _opaque_directory(path: Path) -> None:
    """An upper-layer directory that hides everything the lower layer has at that path."""
    path.mkdir(parents=True, exist_ok=True)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _etc_upper(root: MachineRoot) -> Path:
    return next(overlay.upper for overlay in root.overlays if overlay.target == "/etc")


def write_hosts(root: MachineRoot, hosts: str) -> None:
    """Give a prepared (not running) machine a new /etc/hosts, for its next boot."""
    _write(_etc_upper(root) / "hosts", hosts)


def place_file(root: MachineRoot, path: str, content: bytes | str, mode: int = 0o644) -> None:
    """Place a file in a prepared machine root, for a backend that needs one of its own there
    (the QEMU backend's in-guest agent). Only /etc, /var and the root's own directories."""
    layers = {overlay.target.strip("/"): overlay.upper for overlay in root.overlays}
    _write(_layer_for(path, layers, root.directory, "(backend)"), content, mode)


def _systemd_quoted(assignment: str) -> str:
    """One `NAME=value` as systemd's DefaultEnvironment= takes it: C-quoted."""
    escaped = assignment.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def apply_grant_environment(root: MachineRoot, grants: Iterable[DeviceGrant]) -> dict[str, str]:
    """Give every unit of a prepared machine the variables its device grants set (a later grant's
    value wins), through a systemd manager drop-in; return them, for herd's command agent."""
    variables: dict[str, str] = {}
    for grant in grants:
        variables.update(grant.environment)
    if variables:
        assignments = " ".join(_systemd_quoted(f"{name}={value}") for name, value in variables.items())
        text = f"# herd: the environment of its device grants\n[Manager]\nDefaultEnvironment={assignments}\n"
        place_file(root, GRANT_ENVIRONMENT, text)
    return variables


def mask_unit(root: MachineRoot, name: str) -> None:
    """Keep a unit from ever starting in a prepared machine (a link to /dev/null in /etc)."""
    link = _etc_upper(root) / "systemd" / "system" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        if link.exists():
            link.unlink()
        os.symlink("/dev/null", link)


def add_unit(root: MachineRoot, name: str, text: str) -> None:
    """Place a unit in a prepared machine root and have herd.target pull it in.

    For backends that need a unit of their own in the machine (the nspawn backend's network gate).
    """
    units = _etc_upper(root) / "systemd" / "system"
    _write(units / name, text)
    wants = units / f"{BOOT_TARGET}.wants"
    wants.mkdir(exist_ok=True)
    if not (wants / name).is_symlink():
        os.symlink(f"../{name}", wants / name)


def _through_links(path: str) -> str:
    """`path` with the machine's top-level links followed (they are copies of the host's: a file
    under /snap, a link to /var/lib/snapd/snap, lands in the /var layer, never on the host)."""
    links = dict(host_top_level())
    for _ in range(16):
        top, _, rest = path.strip("/").partition("/")
        target = links.get(top)
        if target is None:
            return path
        path = os.path.normpath(f"{target if target.startswith('/') else '/' + target}/{rest}")
    raise HerdError(f"{path}: too many levels of links among the host's top-level directories")


def _layer_for(path: str, layers: dict[str, Path], directory: Path, machine: str) -> Path:
    """Where a file placed at `path` in the machine is written on the host."""
    resolved = _through_links(path)
    top = resolved.strip("/").split("/", 1)[0]
    if top in layers:
        return layers[top] / os.path.relpath(resolved, f"/{top}")
    if top in SHARED_READ_ONLY or top in UNPLACEABLE:
        raise HerdError(
            f"machine {machine!r}, field 'files': {path} leads to /{top}, which machines cannot write"
        )
    return directory / resolved.lstrip("/")


def prepare(
    machine: MachineSpec, state_dir: Path, hosts: str, journal_dir: Path, lowers: Path
) -> MachineRoot:
    """Build the machine's root under `state_dir` and describe how to assemble it; `lowers` holds
    the /etc and /var it starts from (`hostsnapshot.snapshot`)."""
    directory = state_dir / "root"
    directory.mkdir(parents=True)
    read_only: list[tuple[str, str]] = []
    for name, link in host_top_level():
        if link is not None:
            os.symlink(link, directory / name)
        elif name in SHARED_READ_ONLY:
            (directory / name).mkdir()
            read_only.append((f"/{name}", f"/{name}"))
    for name in (*OVERLAID, *EMPTY_DIRECTORIES):
        (directory / name).mkdir(exist_ok=True)
    (directory / "root").chmod(0o700)
    (directory / "tmp").chmod(0o1777)

    layers = {name: state_dir / f"{name}-upper" for name in OVERLAID}
    etc = layers["etc"]
    units = etc / "systemd" / "system"
    for name in host_unit_dependency_dirs():
        _opaque_directory(units / name)
    _mask_vendor_wants(units, MULTI_USER_TARGET, MULTI_USER_KEPT)
    _opaque_directory(layers["var"] / "tmp")
    _write(etc / "hostname", f"{machine.name}\n")
    _write(etc / "machine-id", f"{os.urandom(16).hex()}\n", 0o444)
    _write(etc / "hosts", hosts)
    _write(etc / "fstab", "# herd: the machine mounts nothing from the host's fstab\n")
    if not Path("/etc/locale.conf").exists():  # so that nothing asks for one at first boot
        _write(etc / "locale.conf", DEFAULT_LOCALE)
    generators = etc / "systemd" / "system-generators"
    generators.mkdir(parents=True)
    for generator in IDLE_GENERATORS:
        os.symlink("/dev/null", generators / generator)
    _write(units / BOOT_TARGET, boot_target(machine))
    os.symlink(BOOT_TARGET, units / "default.target")
    for unit, text in machine.units.items():
        _write(units / unit, text)
    for path, spec in machine.files.items():
        _write(_layer_for(path, layers, directory, machine.name), spec.content, spec.mode)

    journal_dir.mkdir(parents=True, exist_ok=True)
    return MachineRoot(
        directory=directory,
        read_only_binds=tuple(read_only),
        overlays=tuple(Overlay(str(lowers / name), layers[name], f"/{name}") for name in OVERLAID),
        binds=((str(journal_dir), "/var/log/journal"),),
    )


def give_to_machine(root: MachineRoot, shift: int) -> None:
    """Hand what herd wrote into a prepared root (its directories, the upper layers' files, the
    journal's directory) to the machine's users as a machine whose root is host id `shift` sees
    them: host root's files become the machine root's. Never a granted device or mount, which stay
    the host's. Run before each boot: herd may have written more since the last."""
    if shift == 0:
        return
    for top in (root.directory, *(overlay.upper for overlay in root.overlays)):
        shift_owners(top, shift)
    for host, _ in root.binds:
        os.chown(host, shift, shift)
