"""Typed specs of a test and its machines, and the validation that builds them.

A user declares machines as plain dicts (`{"machine1": {"services": ["nginx"]}}`); `parse_test` turns
the declaration into frozen dataclasses or raises one `SpecError` that lists every problem, each naming
the test, the machine and the field. Nothing here knows a backend: which backends exist, and what
their `options` mean, is checked later by the plugins (see `herd.hooks.manager`).
"""

from __future__ import annotations

import keyword
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from herd.declare.netspec import (
    DEFAULT_NETWORK,
    MachineNetwork,
    NetworkSpec,
    check_topology,
    parse_forward_ports,
    parse_machine_networks,
    parse_networks,
)
from herd.errors import SpecError

# Names the script namespace gives to the driver (the NixOS test driver's globals among them); a
# machine may not take them. A test of one machine also gets it as `machine`, which a machine may be.
DRIVER_NAMES = frozenset(
    {
        "driver",
        "machines",
        "start_all",
        "subtest",
        "retry",
        "log",
        "join_all",
        "polling_condition",
        "serial_stdout_on",
        "serial_stdout_off",
        "create_machine",
        "t",
        "os",
        "re",
        "time",
        "vlans",
        "BaseMachine",
    }
)
SINGLE_MACHINE_NAME = "machine"
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_UNIT_NAME = re.compile(
    r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount|automount|swap|slice|scope)$"
)
_UNIT_PLAIN_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+$")
# A test's name is a directory name under the output directory (see `test_name_problem`).
TEST_NAME_MAX_BYTES = 128
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_CDI_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9._-]*=[A-Za-z0-9][A-Za-z0-9._:-]*$")
_PCI_ADDRESS = re.compile(r"^pci:[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
HOST_IMAGE = "host"
_IMAGE_KIND = re.compile(r"^[a-z][a-z0-9-]*$")
IMAGE_GRAMMAR = (
    "'host' (the host's own OS, the default), 'KIND:VALUE' (such as 'debian:bookworm') or a mapping "
    "of one KIND to its VALUE (such as {'nixos': '/nix/store/...'})"
)
# Debian policy: lower-case letters, digits, '+', '-' and '.', at least two, the first alphanumeric.
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# Files herd writes into every machine; a test declares what goes into them through its fields.
HERD_WRITES = frozenset(
    {
        "/etc/hostname",
        "/etc/machine-id",
        "/etc/hosts",
        "/etc/fstab",
        "/etc/systemd/system/default.target",
        "/etc/systemd/system/herd.target",
    }
)
HERD_WRITES_UNDER = ("/etc/systemd/system-generators/", "/etc/systemd/system/herd.target.wants/")
RESERVED_UNITS = frozenset({"herd.target", "default.target"})
# Top-level directories where `files` may not go: shared read-only, virtual, or fresh at boot.
# Resource limits every backend applies to a machine (sizes in MiB).
DEFAULT_MEMORY = 1024
DEFAULT_CPUS = 2.0
DEFAULT_PIDS = 4096
DEFAULT_DISK = 2048
MINIMUM_MEMORY = 16
MINIMUM_CPUS = 0.01  # the smallest CPU share a cgroup's quota expresses (1 ms per 100 ms)
MAXIMUM_CPUS = 1024
MINIMUM_PIDS = 64
MAXIMUM_PIDS = 1 << 22  # the kernel's largest PID count
MINIMUM_DISK = 16
_SIZE = re.compile(r"^([0-9]+)([KMGT])(?:i?B)?$", re.IGNORECASE)
_UNIT_KIB = {"K": 1, "M": 1 << 10, "G": 1 << 20, "T": 1 << 30}
SIZE_GRAMMAR = (
    "MiB as an integer, or a string of an integer and a unit: K, M, G or T, optionally followed "
    "by 'iB' or 'B' ('512M', '2G', '1536MiB'; all powers of 1024)"
)
UNPLACEABLE = frozenset(
    {
        "usr",
        "opt",
        "nix",
        "bin",
        "sbin",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
    }
)


@dataclass(frozen=True)
class FileSpec:
    """A file herd places in a machine before it boots."""

    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class MachineSpec:
    """One machine of a test, validated. `backend` is None until the run picks its default."""

    name: str
    backend: str | None = None
    image: str | Mapping[str, Any] = HOST_IMAGE  # see `image_kind`
    packages: tuple[str, ...] = ()  # Debian packages installed over the image, in a cached layer
    services: tuple[str, ...] = ()
    units: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, FileSpec] = field(default_factory=dict)
    boot_timeout: float = 60.0
    options: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ()  # requests a device plugin turns into grants
    networks: tuple[MachineNetwork, ...] | None = None  # None: the network `default`
    forward_ports: Mapping[int, int] = field(default_factory=dict)
    memory: int = DEFAULT_MEMORY  # MiB
    cpus: float = DEFAULT_CPUS
    pids: int = DEFAULT_PIDS  # processes and threads
    disk: int = DEFAULT_DISK  # MiB the machine may write to its root file system

    @property
    def nics(self) -> tuple[MachineNetwork, ...]:
        """The networks the machine joins at boot, in its order."""
        return self.networks if self.networks is not None else (MachineNetwork(DEFAULT_NETWORK),)

    @property
    def script_name(self) -> str:
        """The Python name under which the test script sees this machine."""
        return self.name.replace("-", "_")

    def units_to_start(self) -> tuple[str, ...]:
        """Every unit the machine's boot target pulls in: named services, then inline units."""
        return self.services + tuple(name for name in self.units if name not in self.services)

    @property
    def image_kind(self) -> str:
        return image_kind(self.image)


def image_kind(image: str | Mapping[str, Any]) -> str:
    """The kind of a validated image: "host", the part of "KIND:VALUE" before the colon, or the
    one key of {KIND: VALUE}. The image providers answer for their kinds (`herd_image_kinds`)."""
    if isinstance(image, str):
        return image.partition(":")[0]
    return str(next(iter(image)))


@dataclass(frozen=True)
class TestSpec:
    """A whole test: its machines (in declaration order) and its script."""

    __test__ = False  # not a pytest test class

    name: str
    machines: tuple[MachineSpec, ...]
    script: str | Callable[..., Any] | None
    timeout: float | None = None
    networks: tuple[NetworkSpec, ...] = ()

    def machine(self, name: str) -> MachineSpec:
        for machine in self.machines:
            if machine.name == name:
                return machine
        raise KeyError(name)

    def with_default_backend(self, backend: str) -> TestSpec:
        """The same test with `backend` given to every machine that names none."""
        machines = tuple(m if m.backend is not None else replace(m, backend=backend) for m in self.machines)
        return replace(self, machines=machines)


MACHINE_FIELDS = tuple(f.name for f in fields(MachineSpec) if f.name != "name")


class _Problems:
    """Collects messages that all start with where they were found."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.items: list[str] = []

    def add(self, message: str, machine: str | None = None, field_name: str | None = None) -> None:
        where = [f"test {self.test!r}"]
        if machine is not None:
            where.append(f"machine {machine!r}")
        if field_name is not None:
            where.append(f"field {field_name!r}")
        self.items.append(f"{', '.join(where)}: {message}")


def _suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_services(value: object, report: Callable[[str], None]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        report(f"expected a list of unit names, got {_type_name(value)}")
        return ()
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _UNIT_PLAIN_NAME.match(item):
            report(f"{item!r} is not a unit name")
            continue
        unit = item if _UNIT_NAME.match(item) else f"{item}.service"
        if unit in names:
            report(f"{item!r} is listed twice")
            continue
        names.append(unit)
    return tuple(names)


def _check_units(value: object, report: Callable[[str], None]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        report(f"expected a mapping of unit file names to unit text, got {_type_name(value)}")
        return {}
    units: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _UNIT_NAME.match(name):
            report(f"{name!r} is not a unit file name (such as 'web.service' or 'web.socket')")
        elif name in RESERVED_UNITS or name.startswith("herd-"):
            report(f"{name!r} is a unit name herd uses itself (herd.target, default.target, herd-*)")
        elif not isinstance(text, str) or not text.strip():
            report(f"unit {name!r}: expected the unit file's text, got {text!r}")
        else:
            units[name] = text
    return units


def _file_spec(path: str, value: object, report: Callable[[str], None]) -> FileSpec | None:
    if isinstance(value, str):
        return FileSpec(value.encode())
    if isinstance(value, bytes):
        return FileSpec(value)
    if not isinstance(value, Mapping):
        report(f"{path}: expected text, bytes or a mapping, got {_type_name(value)}")
        return None
    unknown = set(value) - {"content", "source", "mode"}
    if unknown:
        report(f"{path}: unknown key(s) {sorted(unknown)} (keys: content, source, mode)")
        return None
    mode = value.get("mode", 0o644)
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        report(f"{path}: mode must be an integer such as 0o644, got {mode!r}")
        return None
    if ("content" in value) == ("source" in value):
        report(f"{path}: give exactly one of 'content' and 'source'")
        return None
    if "source" in value:
        source = value["source"]
        if not isinstance(source, str | os.PathLike):
            report(f"{path}: source must be a path on the host, got {_type_name(source)}")
            return None
        try:
            with open(source, "rb") as handle:
                return FileSpec(handle.read(), mode)
        except OSError as error:
            report(f"{path}: cannot read source {os.fspath(source)!r}: {error.strerror}")
            return None
    content = value["content"]
    if isinstance(content, str):
        content = content.encode()
    if not isinstance(content, bytes):
        report(f"{path}: content must be text or bytes, got {_type_name(content)}")
        return None
    return FileSpec(content, mode)


def _path_parts(path: str) -> list[str]:
    """The components of an absolute path, without the empty and `.` ones that `//` and `/./` make."""
    return [part for part in path.split("/") if part not in ("", ".")]


def _file_path_problem(path: object) -> str | None:
    """Why `path` cannot name a file in a machine, or None.

    `..` is refused rather than folded: in the machine it would follow links that herd cannot see.
    """
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/") or not _path_parts(path):
        return f"{path!r} is not an absolute file path"
    if "\0" in path:
        return f"{path!r} holds a NUL byte"
    if ".." in _path_parts(path):
        return f"{path!r} has a '..' component: give the path without it"
    return None


def _ancestors(path: str) -> list[str]:
    """`/a/b/c` → [`/a`, `/a/b`]."""
    parts = path.split("/")[1:-1]
    return ["/" + "/".join(parts[: depth + 1]) for depth in range(len(parts))]


# What herd makes in every machine besides its files: the directories it writes into, and two it
# mounts or hides (the journal's, and /var/tmp, emptied). A file may go below them, never at them
# or at their parents.
_HERD_MADE_DIRECTORIES = (*(under.rstrip("/") for under in HERD_WRITES_UNDER), "/var/log/journal", "/var/tmp")
HERD_DIRECTORIES = frozenset(
    {
        *_HERD_MADE_DIRECTORIES,
        *(ancestor for made in (*HERD_WRITES, *_HERD_MADE_DIRECTORIES) for ancestor in _ancestors(made)),
    }
)


def _herd_conflict(path: str) -> str | None:
    """Why herd's own writes leave no room for a file at `path`, or None."""
    if path in HERD_WRITES or f"{path}/".startswith(HERD_WRITES_UNDER):
        return f"{path!r} is written by herd itself (it makes the machine what the test declares)"
    for ancestor in _ancestors(path):
        if ancestor in HERD_WRITES:
            return f"{path!r} is below {ancestor!r}, a file herd writes itself"
    if path in HERD_DIRECTORIES:
        return f"{path!r} is a directory herd makes in every machine"
    return None


def _host_conflict(path: str) -> str | None:
    """Why the host's own tree, which the machine's /etc and /var are views of, leaves no room for
    a file at `path`, or None. Links at the top (such as /snap) are followed when files are placed."""
    for ancestor in _ancestors(path)[1:]:
        if os.path.islink(ancestor):
            return (
                f"{path!r} is below {ancestor!r}, a link on the host to {os.readlink(ancestor)!r}: "
                "herd would replace the link with a directory; give the path the link leads to"
            )
        if os.path.lexists(ancestor) and not os.path.isdir(ancestor):
            return f"{path!r} is below {ancestor!r}, which is a file on the host, not a directory"
    if os.path.isdir(path) and not os.path.islink(path):
        return f"{path!r} is a directory on the host: a file cannot replace it"
    return None


def _conflicts_between(paths: dict[str, str]) -> list[str]:
    """Declared paths (normalised → as given) that cannot all be files: one below another."""
    return [
        f"{given!r} is below {paths[ancestor]!r}, also declared: a path cannot be both a file and a directory"
        for normal, given in paths.items()
        for ancestor in _ancestors(normal)
        if ancestor in paths
    ]


def _check_files(value: object, report: Callable[[str], None]) -> dict[str, FileSpec]:
    if not isinstance(value, Mapping):
        report(f"expected a mapping of absolute paths to contents, got {_type_name(value)}")
        return {}
    files: dict[str, FileSpec] = {}
    declared: dict[str, str] = {}  # normalised path → the path as given
    for path, content in value.items():
        problem = _file_path_problem(path)
        if problem is not None:
            report(problem)
            continue
        normal = "/" + "/".join(_path_parts(path))
        top = normal.split("/")[1]
        if top in UNPLACEABLE:
            report(
                f"{path!r} is on a file system herd cannot place files on before boot "
                f"(/{top} is shared read-only from the host, virtual, or fresh at every boot)"
            )
            continue
        if normal in declared:
            report(f"{path!r} is the same path as {declared[normal]!r}, also declared")
            continue
        declared[normal] = path
        problem = _herd_conflict(normal) or _host_conflict(normal)
        if problem is not None:
            report(problem)
            continue
        spec = _file_spec(path, content, report)
        if spec is not None:
            files[normal] = spec
    for problem in _conflicts_between(declared):
        report(problem)
    return files


def _check_backend(value: object, report: Callable[[str], None]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _BACKEND_NAME.match(value):
        report(f"expected the name of an installed backend (see `herd plugins`), got {value!r}")
        return None
    return value


def _check_image(value: object, report: Callable[[str], None]) -> str | dict[str, Any]:
    """The image's form only: which kinds exist, and what their values mean, is the providers'
    to say once the plugins are loaded (`herd.run.resolve`)."""
    if isinstance(value, str):
        kind, colon, rest = value.partition(":")
        if value == HOST_IMAGE or (colon and _IMAGE_KIND.match(kind) and rest.strip()):
            return value
    elif isinstance(value, Mapping) and len(value) == 1:
        [(kind, _)] = value.items()
        if isinstance(kind, str) and _IMAGE_KIND.match(kind):
            return dict(value)
    report(f"{value!r} is not an image: expected {IMAGE_GRAMMAR}")
    return HOST_IMAGE


def _distinct(
    value: object, report: Callable[[str], None], what: str, valid: Callable[[str], bool], rule: str
) -> tuple[str, ...]:
    """A list of distinct strings, each `valid`: `what` names the list, `rule` says what an item is."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        report(f"expected a list of {what}, got {_type_name(value)}")
        return ()
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not valid(item):
            report(f"{item!r} is not {rule}")
        elif item in items:
            report(f"{item!r} is listed twice")
        else:
            items.append(item)
    return tuple(items)


def _check_packages(value: object, report: Callable[[str], None]) -> tuple[str, ...]:
    return _distinct(
        value,
        report,
        "Debian package names",
        lambda item: bool(_DEBIAN_PACKAGE.match(item)),
        "a Debian package name (lower-case letters, digits, '+', '-' and '.', at least two, "
        "starting with a letter or digit)",
    )


# The longest timeout herd accepts, in seconds: one week. No test waits that long on purpose, and
# the timers a timeout ends up in (the agent's, the run's SIGALRM) overflow far above it.
MAX_TIMEOUT = 7 * 24 * 3600


def timeout_problem(value: object) -> str | None:
    """Why `value` is no timeout herd can use, or None: it must be a number of seconds above 0 and
    at most `MAX_TIMEOUT` (which leaves out NaN and infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        return f"expected a positive number of seconds, at most {MAX_TIMEOUT} (one week), got {value!r}"
    return None


def _check_timeout(value: object, report: Callable[[str], None]) -> float:
    problem = timeout_problem(value)
    if problem is not None:
        report(problem)
        return 60.0
    return float(value)  # type: ignore[arg-type]


def _check_devices(value: object, report: Callable[[str], None]) -> tuple[str, ...]:
    return _distinct(
        value,
        report,
        "device requests",
        lambda item: bool(_CDI_NAME.match(item) or _PCI_ADDRESS.match(item) or item.startswith("/")),
        "a device request: a CDI name ('nvidia.com/gpu=0'), a host path ('/dev/fuse') or a PCI "
        "function ('pci:0000:01:00.0')",
    )


def parse_size(value: object) -> int:
    """MiB from an integer of MiB or a string such as "512M" or "2GiB" (see `SIZE_GRAMMAR`).

    Raises ValueError with a message that says what was expected.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected {SIZE_GRAMMAR}, got {value!r}")
    kib = int(match[1]) * _UNIT_KIB[match[2].upper()]
    if kib % 1024:
        raise ValueError(f"{value!r} is not a whole number of MiB")
    return kib // 1024


def _size_checker(minimum: int, default: int) -> Callable[[object, Callable[[str], None]], int]:
    def check(value: object, report: Callable[[str], None]) -> int:
        try:
            mib = parse_size(value)
        except ValueError as error:
            report(str(error))
            return default
        if mib < minimum:
            report(f"expected at least {minimum} MiB, got {value!r}")
            return default
        return mib

    return check


def _check_cpus(value: object, report: Callable[[str], None]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        report(f"expected a number of CPUs such as 2 or 0.5, got {value!r}")
        return DEFAULT_CPUS
    if not MINIMUM_CPUS <= value <= MAXIMUM_CPUS:
        report(f"expected a number of CPUs from {MINIMUM_CPUS} to {MAXIMUM_CPUS}, got {value!r}")
        return DEFAULT_CPUS
    return float(value)


def _check_pids(value: object, report: Callable[[str], None]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        report(f"expected an integer number of processes and threads, got {value!r}")
        return DEFAULT_PIDS
    if not MINIMUM_PIDS <= value <= MAXIMUM_PIDS:
        report(f"expected from {MINIMUM_PIDS} to {MAXIMUM_PIDS} processes and threads, got {value!r}")
        return DEFAULT_PIDS
    return value


def _check_options(value: object, report: Callable[[str], None]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        report(f"expected a mapping of option names to values, got {_type_name(value)}")
        return {}
    return dict(value)


_CHECKERS: dict[str, Callable[[object, Callable[[str], None]], Any]] = {
    "backend": _check_backend,
    "image": _check_image,
    "packages": _check_packages,
    "services": _check_services,
    "units": _check_units,
    "files": _check_files,
    "boot_timeout": _check_timeout,
    "options": _check_options,
    "devices": _check_devices,
    "networks": parse_machine_networks,
    "forward_ports": parse_forward_ports,
    "memory": _size_checker(MINIMUM_MEMORY, DEFAULT_MEMORY),
    "cpus": _check_cpus,
    "pids": _check_pids,
    "disk": _size_checker(MINIMUM_DISK, DEFAULT_DISK),
}


def _parse_machine(name: str, declaration: object, problems: _Problems) -> MachineSpec | None:
    if not isinstance(declaration, Mapping):
        problems.add(f"expected a mapping of fields, got {_type_name(declaration)}", name)
        return None
    values: dict[str, Any] = {}
    for key, value in declaration.items():
        if key not in _CHECKERS:
            hint = _suggest(str(key), MACHINE_FIELDS)
            problems.add(f"unknown field{hint}; fields: {', '.join(MACHINE_FIELDS)}", name, key)
            continue

        def report(message: str, key: str = key) -> None:
            problems.add(message, name, key)

        values[key] = _CHECKERS[key](value, report)
    return MachineSpec(name=name, **values)


def _check_machine_name(name: object, seen: dict[str, str], problems: _Problems) -> bool:
    if not isinstance(name, str) or not _HOSTNAME_LABEL.match(name):
        problems.add(
            f"machine name {name!r} is not a valid hostname: a letter, then letters, digits "
            "or '-', at most 63 characters, not ending in '-'"
        )
        return False
    python_name = name.replace("-", "_")
    if python_name in DRIVER_NAMES or keyword.iskeyword(python_name):
        problems.add(f"machine name {name!r} is taken by the test script's own names", name)
        return False
    if name.lower() in seen:
        problems.add(f"machine name {name!r} is the same hostname as {seen[name.lower()]!r}", name)
        return False
    seen[name.lower()] = name
    return True


def test_name_problem(name: object) -> str | None:
    """Why `name` cannot name a test, or None. The name is one component of the path of the run's
    output directory (`herd-output/<name>/`), so it must stay one: printable characters, no `/`,
    no leading `.` (which also rules out `.` and `..`), at most `TEST_NAME_MAX_BYTES` in UTF-8."""
    rule = (
        f"a test name is printable characters without '/', not starting with '.', "
        f"at most {TEST_NAME_MAX_BYTES} bytes in UTF-8"
    )
    if not isinstance(name, str) or not name.strip():
        return f"the test needs a non-empty name, got {name!r}"
    if not name.isprintable() or "/" in name or name.startswith("."):
        return f"the test name {name!r} cannot name a directory: {rule}"
    if len(name.encode()) > TEST_NAME_MAX_BYTES:
        return f"the test name {name[:20]!r}... is too long: {rule}"
    return None


def script_names(machine_names: set[str]) -> frozenset[str]:
    """Every name a test's script sees beside Python's builtins: its machines (by script name),
    `machine` when there is one, and the driver's names."""
    single = {SINGLE_MACHINE_NAME} if len(machine_names) == 1 else set()
    return frozenset(machine_names | single | DRIVER_NAMES)


def _check_script(script: object, machine_names: set[str], problems: _Problems) -> None:
    if script is None:  # the caller drives the machines (a pytest test)
        return
    if isinstance(script, str):
        try:
            compile(script, f"<test {problems.test} script>", "exec")
        except SyntaxError as error:
            problems.add(f"the script has a syntax error on its line {error.lineno}: {error.msg}")
        return
    if not callable(script):
        problems.add(f"script: expected a string or a function, got {_type_name(script)}")
        return
    import inspect

    for parameter in inspect.signature(script).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        known = script_names(machine_names)
        if parameter.name not in known and parameter.default is parameter.empty:
            hint = _suggest(parameter.name, sorted(known))
            problems.add(f"script parameter {parameter.name!r} is neither a machine nor a driver name{hint}")


def parse_test(
    name: object,
    machines: object,
    script: object,
    timeout: object = None,
    networks: object = None,
) -> TestSpec:
    """Validate a test declaration and return its spec, or raise `SpecError` listing every problem.

    `script` may be None when the caller drives the machines itself (herd's pytest plugin).
    """
    name_problem = test_name_problem(name)
    test_name = name if isinstance(name, str) and name_problem is None else "?"
    problems = _Problems(test_name)
    if name_problem is not None:
        problems.add(name_problem)
    parsed: list[MachineSpec] = []
    if not isinstance(machines, Mapping) or not machines:
        problems.add("machines: expected a non-empty mapping of machine names to their fields")
        machines = {}
    seen: dict[str, str] = {}
    for machine_name, declaration in machines.items():
        if _check_machine_name(machine_name, seen, problems):
            machine = _parse_machine(machine_name, declaration, problems)
            if machine is not None:
                parsed.append(machine)
    declared = parse_networks(networks, lambda message, network: problems.add(
        f"network {network!r}: {message}" if network else message, field_name="networks"))  # fmt: skip
    check_topology(
        declared,
        {m.name: m.networks for m in parsed},
        {m.name: m.forward_ports for m in parsed},
        problems.add,
    )
    _check_script(script, {m.script_name for m in parsed}, problems)
    if timeout is not None and (problem := timeout_problem(timeout)) is not None:
        problems.add(f"timeout: {problem}")
    if problems.items:
        raise SpecError(problems.items)
    return TestSpec(
        name=test_name,
        machines=tuple(parsed),
        script=script,  # type: ignore[arg-type]
        timeout=float(timeout) if timeout is not None else None,  # type: ignore[arg-type]
        networks=declared,
    )
