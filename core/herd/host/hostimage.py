"""A machine's root, assembled from its image without copying it; and the `host` image's shape.

An image (`herd.hooks.types.ImageRoot`, from an image provider) is read-only trees on the host.
Its shared trees (/usr and the like) are shared read-only; its overlaid trees (/etc and /var) are
copy-on-write overlays, each with a per-machine upper layer. The `host` image is the host's own OS:
/usr (and /opt, /nix where present) shared, /etc and /var overlays of what the machine may see of
the host's (`herd.host.hostsnapshot`: its packaged configuration, never its secrets or state),
with a layer of packages between them where the machine declares `packages`
(`herd.host.packagelayer`).

herd writes into the upper layers what makes the machine itself (hostname, hosts, machine-id, an
empty fstab, the boot target and the test's units and files) and hides the image's enabled units
by making every `*.wants`/`*.requires` directory of /etc/systemd/system that a layer has opaque.
systemd then boots `herd.target`, which pulls in only what the test asks for: never the image's
enabled services, never a wait on network-online. It pulls in multi-user.target too, so that a
script can wait for it as on a NixOS machine, but of what the image's packages have that target
want only `MULTI_USER_KEPT` starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from herd.declare.spec import UNPLACEABLE, MachineSpec
from herd.errors import HerdError
from herd.hooks.types import DeviceGrant, ImageRoot, Layer, MachineRoot, Overlay, Tree
from herd.host.idmap import shift_owners

BOOT_TARGET = "herd.target"
# systemd reads manager settings from here: DefaultEnvironment= reaches every unit it starts.
GRANT_ENVIRONMENT = "/etc/systemd/system.conf.d/herd-devices.conf"
# Shared read-only when the host has them as directories (bin, sbin and lib are links to usr/ on a
# merged-/usr system, and the links are then copied as they are).
SHARED_READ_ONLY = ("usr", "opt", "nix", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
OVERLAID = ("etc", "var")
UNIT_DIR = "systemd/system"  # below /etc
VENDOR_UNIT_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system")
MULTI_USER_TARGET = "multi-user.target"
# Of the units the host's packages have multi-user.target want (dbus, systemd-logind, getty.target,
# systemd-update-utmp-runlevel, ...), the one a machine starts: it lets users other than root log
# in. The others are masked as its dependencies, not as units: dbus and logind still start on
# demand, through dbus.socket, when something uses the bus (`su` opening a session), and a test
# may list any of them in `services`.
MULTI_USER_KEPT = frozenset({"systemd-user-sessions.service"})
# systemd's generators that have nothing to do in a herd machine (its fstab and crypttab are empty,
# it has no disks, consoles or firmware of its own, and herd writes a VM's kernel command line,
# whose systemd.wants=, systemd.mask=, systemd.run= and systemd.debug_shell the debug and run
# generators read). Masked, they save tens of milliseconds of a container's boot; under TCG, where
# the debug and run generators alone took half a second, more.
# Generators that packages ship (postgresql's, for one) still run, and so do the SysV and
# rc.local compatibility generators, which make units a machine may be asked to start.
IDLE_GENERATORS = (
    "systemd-bless-boot-generator",
    "systemd-cryptsetup-generator",
    "systemd-debug-generator",
    "systemd-fstab-generator",
    "systemd-getty-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-integritysetup-generator",
    "systemd-run-generator",
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
def unit_dependency_dirs(etc: str) -> tuple[str, ...]:
    """The `*.wants` and `*.requires` directories under `etc`'s systemd/system (a layer of an
    image's /etc: layers never change, so each is read once)."""
    units = Path(etc, UNIT_DIR)
    if not units.is_dir():
        return ()
    return tuple(
        sorted(
            entry.name
            for entry in os.scandir(units)
            if entry.is_dir() and entry.name.endswith((".wants", ".requires"))
        )
    )


@cache
def _wants_in(directory: str, target: str) -> frozenset[str]:
    wants = Path(directory, f"{target}.wants")
    return frozenset(entry.name for entry in os.scandir(wants)) if wants.is_dir() else frozenset()


def vendor_wants(image: ImageRoot, target: str) -> tuple[str, ...]:
    """The units that the image's packages have `target` want (its `.wants` directories under
    /usr/lib/systemd/system and /lib/systemd/system, in every layer)."""
    names: set[str] = set()
    for directory in VENDOR_UNIT_DIRS:
        top, _, below = directory.strip("/").partition("/")
        tree = image.tree(f"/{top}")
        for layer in tree.layers if tree is not None else ():
            names |= _wants_in(os.path.join(layer.path, below), target)
    return tuple(sorted(names))


def _mask_vendor_wants(units: Path, wanted: Iterable[str], kept: frozenset[str]) -> None:
    """Keep a target from pulling in what the image's packages have it want (`wanted`, the units
    in its vendor .wants directories), but for `kept`: a link to /dev/null in its .wants directory
    in /etc masks the dependency, not the unit."""
    wants = units / f"{MULTI_USER_TARGET}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for name in wanted:
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
    return next(o.upper for o in root.overlays if o.target == "/etc" and o.upper is not None)


def _uppers(root: MachineRoot) -> dict[str, Path]:
    """The root's writable layers by the top-level directory they serve ("etc": its upper)."""
    return {o.target.strip("/"): o.upper for o in root.overlays if o.upper is not None}


def _read_only(root: MachineRoot) -> set[str]:
    """The top-level directories of the root that machines cannot write."""
    shared = {guest for _, guest in root.read_only_binds}
    shared |= {o.target for o in root.overlays if o.upper is None}
    return {target.strip("/") for target in shared} | UNPLACEABLE


def write_hosts(root: MachineRoot, hosts: str) -> None:
    """Give a prepared (not running) machine a new /etc/hosts, for its next boot."""
    _write(_etc_upper(root) / "hosts", hosts)


def place_file(root: MachineRoot, path: str, content: bytes | str, mode: int = 0o644) -> None:
    """Place a file in a prepared machine root, for a backend that needs one of its own there
    (the QEMU backend's in-guest agent). Only /etc, /var and the root's own directories."""
    _write(_layer_for(path, _uppers(root), _read_only(root), root.directory, "(backend)"), content, mode)


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
    link = _etc_upper(root) / root.unit_directory / name
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        if link.exists():
            link.unlink()
        os.symlink("/dev/null", link)


def add_unit(root: MachineRoot, name: str, text: str) -> None:
    """Place a unit in a prepared machine root and have herd.target pull it in.

    For backends that need a unit of their own in the machine (the nspawn backend's network gate).
    """
    units = _etc_upper(root) / root.unit_directory
    _write(units / name, text)
    wants = units / f"{BOOT_TARGET}.wants"
    wants.mkdir(exist_ok=True)
    if not (wants / name).is_symlink():
        os.symlink(f"../{name}", wants / name)


def _through_links(path: str, directory: Path) -> str:
    """`path` with the links at the top of the machine's root `directory` followed (they are the
    image's: on the host image, a file under /snap, a link to /var/lib/snapd/snap, lands in the
    /var layer, never on the host)."""
    for _ in range(16):
        top, _, rest = path.strip("/").partition("/")
        link = directory / top
        if not top or not link.is_symlink():
            return path
        target = os.readlink(link)
        path = os.path.normpath(f"{target if target.startswith('/') else '/' + target}/{rest}")
    raise HerdError(f"{path}: too many levels of links among the image's top-level directories")


def _layer_for(
    path: str, layers: dict[str, Path], read_only: set[str], directory: Path, machine: str
) -> Path:
    """Where a file placed at `path` in the machine is written on the host: in the upper layer of
    its top-level directory, or in the root `directory` itself."""
    resolved = _through_links(path, directory)
    top = resolved.strip("/").split("/", 1)[0]
    if top in layers:
        return layers[top] / os.path.relpath(resolved, f"/{top}")
    if top in read_only:
        raise HerdError(
            f"machine {machine!r}, field 'files': {path} leads to /{top}, which machines cannot write"
        )
    return directory / resolved.lstrip("/")


def _upper_name(target: str) -> str:
    return target.strip("/").replace("/", "-")


def _assemble(
    image: ImageRoot, state_dir: Path, view: Callable[[Layer], str]
) -> tuple[list[tuple[str, str]], list[Overlay]]:
    """The read-only binds and the overlays of a root of `image`: a shared tree of one layer of
    host ids is a bind (the backend maps it for a confined machine, as it maps the host's /usr);
    any other shared tree is a read-only overlay of its layers, each seen through `view` (owned as
    the machine sees it); each overlaid tree gets an upper layer of the machine's own."""
    binds: list[tuple[str, str]] = []
    overlays: list[Overlay] = []
    for tree in image.shared:
        if len(tree.layers) == 1 and tree.layers[0].id_shift == 0:
            binds.append((tree.layers[0].path, tree.target))
        else:
            overlays.append(Overlay(tuple(map(view, tree.layers)), None, tree.target))
    for tree in image.overlaid:
        upper = state_dir / f"{_upper_name(tree.target)}-upper"
        upper.mkdir()
        overlays.append(Overlay(tuple(map(view, tree.layers)), upper, tree.target))
    return binds, overlays


def _in_any_layer(tree: Tree, path: str) -> bool:
    return any(os.path.lexists(os.path.join(layer.path, path)) for layer in tree.layers)


def prepare(
    machine: MachineSpec,
    state_dir: Path,
    hosts: str,
    journal_dir: Path,
    *,
    image: ImageRoot,
    view: Callable[[Layer], str],
) -> MachineRoot:
    """Build the machine's root of `image` under `state_dir` and describe how to assemble it.

    `view` gives the path of a layer as the machine sees it (the layer itself, or an id-mapped
    view of it for a confined machine: `herd.host.imageviews`)."""
    directory = state_dir / "root"
    directory.mkdir(parents=True)
    for name, link in image.top_level:
        if link is not None:
            os.symlink(link, directory / name)
        else:  # a mount point, or a directory of the machine's own
            (directory / name).mkdir()
    for name in EMPTY_DIRECTORIES:
        (directory / name).mkdir(exist_ok=True)
    (directory / "root").chmod(0o700)
    (directory / "tmp").chmod(0o1777)
    read_only, overlays = _assemble(image, state_dir, view)
    root = MachineRoot(
        directory=directory,
        read_only_binds=tuple(read_only),
        overlays=tuple(overlays),
        binds=((str(journal_dir), "/var/log/journal"),),
        init=image.init,
        unit_directory=image.unit_directory,
    )

    layers = _uppers(root)
    etc = layers["etc"]
    units = etc / image.unit_directory
    etc_tree = image.tree("/etc")
    assert etc_tree is not None, "every image has /etc among its overlaid trees"
    for name in {name for layer in etc_tree.layers for name in unit_dependency_dirs(layer.path)}:
        _opaque_directory(units / name)
    _mask_vendor_wants(units, vendor_wants(image, MULTI_USER_TARGET), MULTI_USER_KEPT)
    if "var" in layers:
        _opaque_directory(layers["var"] / "tmp")
    _write(etc / "hostname", f"{machine.name}\n")
    _write(etc / "machine-id", f"{os.urandom(16).hex()}\n", 0o444)
    _write(etc / "hosts", hosts)
    _write(etc / "fstab", "# herd: the machine mounts nothing from the host's fstab\n")
    if not _in_any_layer(etc_tree, "locale.conf"):  # so that nothing asks for one at first boot
        _write(etc / "locale.conf", DEFAULT_LOCALE)
    generators = etc / "systemd" / "system-generators"
    generators.mkdir(parents=True)
    for generator in IDLE_GENERATORS:
        os.symlink("/dev/null", generators / generator)
    _write(units / BOOT_TARGET, boot_target(machine))
    os.symlink(BOOT_TARGET, units / "default.target")
    for unit, text in machine.units.items():
        _write(units / unit, text)
    read_only_tops = _read_only(root)
    for path, spec in machine.files.items():
        _write(_layer_for(path, layers, read_only_tops, directory, machine.name), spec.content, spec.mode)

    journal_dir.mkdir(parents=True, exist_ok=True)
    return root


def give_to_machine(root: MachineRoot, shift: int) -> None:
    """Hand what herd wrote into a prepared root (its directories, the upper layers' files, the
    journal's directory) to the machine's users as a machine whose root is host id `shift` sees
    them: host root's files become the machine root's. Never a granted device or mount, which stay
    the host's. Run before each boot: herd may have written more since the last."""
    if shift == 0:
        return
    for top in (root.directory, *_uppers(root).values()):
        shift_owners(top, shift)
    for host, _ in root.binds:
        os.chown(host, shift, shift)


def layer_holds(layer: Path, name: str) -> bool:
    """Whether a layer of packages has anything in its directory `name` (a top-level directory of
    the image it goes over)."""
    try:
        with os.scandir(layer / name) as entries:
            return any(True for _ in entries)
    except FileNotFoundError:
        return False
