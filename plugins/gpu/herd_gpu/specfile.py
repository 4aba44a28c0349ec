"""One Container Device Interface (CDI) spec file, read and checked as the CDI library does.

A spec (JSON or YAML) names a kind (`vendor/class`), its devices and the container edits each needs
(environment, device nodes, mounts, hooks), plus edits shared by every device of the spec. herd
reads the versions in use today, 0.3.0 to 0.8.0, and holds a spec to the version it declares: a
field that came in a later version than its `cdiVersion` is an error, as in the CDI library. Every
error names the file and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from herd_gpu.nodes import DeviceError

VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0")
EXTENSIONS = (".json", ".yaml")
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
NODE_TYPES = ("", "b", "c", "u", "p")
_VENDOR_OR_CLASS = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$")


class SpecFileError(DeviceError):
    """A CDI spec that cannot be used. `kind` is the spec's kind when it could be read."""

    def __init__(self, path: Path, field: str | None, problem: str, kind: str | None = None) -> None:
        self.path = path
        self.field = field
        self.kind = kind
        super().__init__(f"{path}: field {field!r}: {problem}" if field else f"{path}: {problem}")


@dataclass(frozen=True)
class NodeEdit:
    """A device node to create in the container at `path`, from `host_path` on the host."""

    field: str
    path: str
    host_path: str
    type: str
    major: int | None
    minor: int | None
    permissions: str


@dataclass(frozen=True)
class MountEdit:
    field: str
    host_path: str
    container_path: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Hook:
    field: str
    name: str
    path: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Edits:
    """Container edits. `unapplied` names edits herd has no way to apply (Intel RDT, extra groups)."""

    env: tuple[str, ...] = ()
    nodes: tuple[NodeEdit, ...] = ()
    mounts: tuple[MountEdit, ...] = ()
    hooks: tuple[Hook, ...] = ()
    unapplied: tuple[str, ...] = ()

    def __add__(self, other: Edits) -> Edits:
        return Edits(
            self.env + other.env,
            self.nodes + other.nodes,
            self.mounts + other.mounts,
            self.hooks + other.hooks,
            self.unapplied + other.unapplied,
        )


@dataclass(frozen=True)
class Device:
    field: str
    name: str
    edits: Edits


@dataclass(frozen=True)
class Spec:
    path: Path
    version: str
    kind: str
    devices: tuple[Device, ...]
    edits: Edits


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class _Reader:
    """Checks one parsed document, field by field; raises SpecFileError at the first problem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind: str | None = None
        self.required = (VERSIONS[0], "")  # the version the fields used need, and the first that needs it

    def fail(self, field: str | None, problem: str) -> SpecFileError:
        return SpecFileError(self.path, field, problem, self.kind)

    def need(self, version: str, field: str) -> None:
        if _version_key(version) > _version_key(self.required[0]):
            self.required = (version, field)

    def mapping(self, value: object, field: str, known: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(field or None, f"expected a mapping, got {_type_name(value)}")
        for key in value:
            if key not in known:
                raise self.fail(_join(field, str(key)), f"unknown field (known here: {', '.join(known)})")
        return value

    def string(self, value: object, field: str, absolute: bool = False) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(field, f"expected a non-empty string, got {value!r}")
        if absolute and not value.startswith("/"):
            raise self.fail(field, f"expected an absolute path, got {value!r}")
        return value

    def strings(self, value: object, field: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(field, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def number(self, value: object, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(field, f"expected a number of 0 or more, got {value!r}")
        return value

    def environment(self, value: object, field: str) -> tuple[str, ...]:
        assignments = self.strings(value, field)
        for index, assignment in enumerate(assignments):
            if assignment.find("=") <= 0:
                raise self.fail(f"{field}[{index}]", f"expected NAME=VALUE, got {assignment!r}")
        return assignments

    def annotations(self, value: object, field: str) -> None:
        self.need("0.6.0", field)
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(field, f"expected a mapping of strings to strings, got {value!r}")

    def spec(self, document: object) -> Spec:
        if isinstance(document, Mapping) and isinstance(document.get("kind"), str):
            self.kind = document["kind"]  # first: a request for this kind then hears what is wrong
        top = self.mapping(document, "", ("cdiVersion", "kind", "annotations", "devices", "containerEdits"))
        for required in ("cdiVersion", "kind", "devices"):
            if required not in top:
                raise self.fail(required, "missing")
        version = str(top["cdiVersion"]).removeprefix("v")
        if version not in VERSIONS:
            raise self.fail(
                "cdiVersion",
                f"unknown version {top['cdiVersion']!r}: herd reads CDI {VERSIONS[0]} to {VERSIONS[-1]}",
            )
        kind = self.string(top["kind"], "kind")
        vendor, _, class_ = kind.partition("/")
        if not (_VENDOR_OR_CLASS.match(vendor) and _VENDOR_OR_CLASS.match(class_)):
            raise self.fail("kind", f"{kind!r} is not vendor/class (letters, digits, '_', '-', '.')")
        if "." in class_:
            self.need("0.6.0", "kind")
        if "annotations" in top:
            self.annotations(top["annotations"], "annotations")
        edits = self.edits(top.get("containerEdits", {}), "containerEdits")
        devices = self.devices(top["devices"])
        if _version_key(self.required[0]) > _version_key(version):
            needed, field = self.required
            raise self.fail(
                "cdiVersion", f"{version} is too old for field {field!r}, which needs CDI {needed} or later"
            )
        return Spec(self.path, version, kind, devices, edits)

    def devices(self, value: object) -> tuple[Device, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("devices", f"expected a non-empty list of devices, got {value!r}")
        devices: list[Device] = []
        for index, item in enumerate(value):
            field = f"devices[{index}]"
            entry = self.mapping(item, field, ("name", "annotations", "containerEdits"))
            name = self.string(entry.get("name"), f"{field}.name")
            if not _DEVICE_NAME.match(name):
                raise self.fail(f"{field}.name", f"{name!r} is not a device name (letters, digits, '_-.:')")
            if not name[0].isalpha():
                self.need("0.5.0", f"{field}.name")
            if any(device.name == name for device in devices):
                raise self.fail(f"{field}.name", f"device {name!r} is defined twice")
            if "annotations" in entry:
                self.annotations(entry["annotations"], f"{field}.annotations")
            if "containerEdits" not in entry:
                raise self.fail(f"{field}.containerEdits", "missing")
            edits = self.edits(entry["containerEdits"], f"{field}.containerEdits")
            if edits == Edits():
                raise self.fail(f"{field}.containerEdits", "a device must edit something")
            devices.append(Device(field, name, edits))
        return tuple(devices)

    def edits(self, value: object, field: str) -> Edits:
        known = ("env", "deviceNodes", "hooks", "mounts", "intelRdt", "additionalGids")
        edits = self.mapping(value, field, known)
        unapplied = []
        for later in ("intelRdt", "additionalGids"):
            if later in edits:
                self.need("0.7.0", f"{field}.{later}")
                unapplied.append(f"{field}.{later}")
        if "additionalGids" in edits:
            gids = edits["additionalGids"]
            if not isinstance(gids, list):
                raise self.fail(f"{field}.additionalGids", f"expected a list of group ids, got {gids!r}")
            for index, gid in enumerate(gids):
                self.number(gid, f"{field}.additionalGids[{index}]")
        if "intelRdt" in edits and not isinstance(edits["intelRdt"], Mapping):
            raise self.fail(f"{field}.intelRdt", f"expected a mapping, got {_type_name(edits['intelRdt'])}")
        return Edits(
            env=self.environment(edits["env"], f"{field}.env") if "env" in edits else (),
            nodes=tuple(
                self.node(n, f"{field}.deviceNodes[{i}]") for i, n in self.items(edits, field, "deviceNodes")
            ),
            mounts=tuple(
                self.mount(m, f"{field}.mounts[{i}]") for i, m in self.items(edits, field, "mounts")
            ),
            hooks=tuple(self.hook(h, f"{field}.hooks[{i}]") for i, h in self.items(edits, field, "hooks")),
            unapplied=tuple(unapplied),
        )

    def items(self, edits: Mapping[str, Any], field: str, name: str) -> list[tuple[int, object]]:
        value = edits.get(name, [])
        if not isinstance(value, list):
            raise self.fail(f"{field}.{name}", f"expected a list, got {_type_name(value)}")
        return list(enumerate(value))

    def node(self, value: object, field: str) -> NodeEdit:
        known = ("path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid")
        entry = self.mapping(value, field, known)
        path = self.string(entry.get("path"), f"{field}.path", absolute=True)
        host_path = path
        if "hostPath" in entry:
            self.need("0.5.0", f"{field}.hostPath")
            host_path = self.string(entry["hostPath"], f"{field}.hostPath", absolute=True)
        node_type = entry.get("type", "")
        if node_type not in NODE_TYPES:
            raise self.fail(f"{field}.type", f"{node_type!r} is not a node type (b, c, u or p)")
        for number in ("major", "minor", "fileMode", "uid", "gid"):
            if number in entry:
                self.number(entry[number], f"{field}.{number}")
        permissions = entry.get("permissions", "")
        if not isinstance(permissions, str) or (permissions != "none" and permissions.strip("rwm")):
            raise self.fail(
                f"{field}.permissions", f"expected letters of 'rwm' or 'none', got {permissions!r}"
            )
        return NodeEdit(
            field, path, host_path, node_type, entry.get("major"), entry.get("minor"), permissions
        )

    def mount(self, value: object, field: str) -> MountEdit:
        entry = self.mapping(value, field, ("hostPath", "containerPath", "options", "type"))
        host_path = self.string(entry.get("hostPath"), f"{field}.hostPath", absolute=True)
        container_path = self.string(entry.get("containerPath"), f"{field}.containerPath", absolute=True)
        options = self.strings(entry["options"], f"{field}.options") if "options" in entry else ()
        if "type" in entry:
            self.need("0.4.0", f"{field}.type")
            mount_type = entry["type"]
            if mount_type not in ("", "bind", "none"):
                raise self.fail(
                    f"{field}.type", f"{mount_type!r}: herd applies bind mounts of host paths only"
                )
        return MountEdit(field, host_path, container_path, options)

    def hook(self, value: object, field: str) -> Hook:
        entry = self.mapping(value, field, ("hookName", "path", "args", "env", "timeout"))
        name = entry.get("hookName")
        if name not in HOOK_NAMES:
            raise self.fail(f"{field}.hookName", f"{name!r} is not one of {', '.join(HOOK_NAMES)}")
        path = self.string(entry.get("path"), f"{field}.path", absolute=True)
        args = self.strings(entry["args"], f"{field}.args") if "args" in entry else ()
        if "env" in entry:
            self.environment(entry["env"], f"{field}.env")
        if "timeout" in entry:
            self.number(entry["timeout"], f"{field}.timeout")
        return Hook(field, name, path, args)


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _parse(path: Path, text: str) -> object:
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecFileError(
                path, None, f"not valid JSON: line {error.lineno} column {error.colno}: {error.msg}"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecFileError(path, None, f"not valid YAML: {where}{problem}") from None


def read(path: Path) -> Spec:
    """Read and check the CDI spec in `path` (.json or .yaml); raise SpecFileError if it is wrong."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SpecFileError(path, None, f"cannot be read: {error}") from None
    return _Reader(path).spec(_parse(path, text))
