"""Reading and checking one CDI spec: versions, kinds, names, edits, and errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd_gpu.specfile import VERSIONS, SpecFileError, read

from .conftest import SpecWriter, spec

NVIDIA_CTK_SPEC = """\
---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidiactl
  - path: /dev/nvidia-uvm
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/lib/x86_64-linux-gnu
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options:
    - ro
    - nosuid
    - nodev
    - bind
"""


def error_of(path: Path) -> SpecFileError:
    with pytest.raises(SpecFileError) as caught:
        read(path)
    return caught.value


def test_a_spec_as_nvidia_ctk_writes_it(write_spec: SpecWriter) -> None:
    parsed = read(write_spec("nvidia.yaml", NVIDIA_CTK_SPEC))
    assert (parsed.version, parsed.kind) == ("0.5.0", "nvidia.com/gpu")
    assert [d.name for d in parsed.devices] == ["0", "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c", "all"]
    assert parsed.edits.env == ("NVIDIA_VISIBLE_DEVICES=void",)
    assert [n.path for n in parsed.edits.nodes] == ["/dev/nvidiactl", "/dev/nvidia-uvm"]
    [hook] = parsed.edits.hooks
    assert (hook.name, hook.path, hook.field) == (
        "createContainer",
        "/usr/bin/nvidia-cdi-hook",
        "containerEdits.hooks[0]",
    )
    [mount] = parsed.edits.mounts
    assert "ro" in mount.options and mount.container_path.endswith("libcuda.so.550.54.15")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_in_use_is_read_from_json_and_yaml(write_spec: SpecWriter, version: str) -> None:
    document = spec(version=version, a={"env": ["A=1"], "deviceNodes": [{"path": "/dev/null"}]})
    for name in ("s.json", "s.yaml"):
        parsed = read(write_spec(name, document))
        assert (parsed.version, parsed.devices[0].edits.env) == (version, ("A=1",))


def test_node_fields_are_kept(write_spec: SpecWriter) -> None:
    node = {
        "path": "/dev/g",
        "hostPath": "/dev/zero",
        "type": "c",
        "major": 1,
        "minor": 5,
        "permissions": "rw",
    }
    parsed = read(write_spec("s.yaml", spec(g={"deviceNodes": [node]})))
    [edit] = parsed.devices[0].edits.nodes
    assert (edit.path, edit.host_path, edit.type, edit.major, edit.minor, edit.permissions) == (
        "/dev/g",
        "/dev/zero",
        "c",
        1,
        5,
        "rw",
    )
    assert edit.field == "devices[0].containerEdits.deviceNodes[0]"


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (
            spec(version="9.9.9", a={"env": ["A=1"]}),
            "cdiVersion",
            "unknown version '9.9.9': herd reads CDI 0.3.0 to 0.8.0",
        ),
        (spec(version="0.2.0", a={"env": ["A=1"]}), "cdiVersion", "unknown version '0.2.0'"),
        ({"cdiVersion": "0.6.0", "devices": []}, "kind", "missing"),
        (spec(kind="gpu", a={"env": ["A=1"]}), "kind", "'gpu' is not vendor/class"),
        (spec(), "devices", "expected a non-empty list of devices"),
        (spec(**{"-x": {"env": ["A=1"]}}), "devices[0].name", "'-x' is not a device name"),
        (spec(a={}), "devices[0].containerEdits", "a device must edit something"),
        (spec(a={"env": ["=1"]}), "devices[0].containerEdits.env[0]", "expected NAME=VALUE, got '=1'"),
        (spec(a={"env": "A=1"}), "devices[0].containerEdits.env", "expected a list of strings"),
        (
            spec(a={"deviceNodes": [{"hostPath": "/dev/zero"}]}),
            "devices[0].containerEdits.deviceNodes[0].path",
            "expected a non-empty string, got None",
        ),
        (
            spec(a={"deviceNodes": [{"path": "dev/x"}]}),
            "devices[0].containerEdits.deviceNodes[0].path",
            "expected an absolute path",
        ),
        (
            spec(a={"deviceNodes": [{"path": "/dev/x", "type": "x"}]}),
            "devices[0].containerEdits.deviceNodes[0].type",
            "'x' is not a node type",
        ),
        (
            spec(a={"deviceNodes": [{"path": "/dev/x", "major": -1}]}),
            "devices[0].containerEdits.deviceNodes[0].major",
            "expected a number of 0 or more, got -1",
        ),
        (
            spec(a={"deviceNodes": [{"path": "/dev/x", "permissions": "rx"}]}),
            "devices[0].containerEdits.deviceNodes[0].permissions",
            "expected letters of 'rwm'",
        ),
        (
            spec(a={"deviceNodes": [{"path": "/dev/x", "hostpath": "/dev/zero"}]}),
            "devices[0].containerEdits.deviceNodes[0].hostpath",
            "unknown field",
        ),
        (
            spec(a={"mounts": [{"hostPath": "/srv"}]}),
            "devices[0].containerEdits.mounts[0].containerPath",
            "expected a non-empty string",
        ),
        (
            spec(a={"mounts": [{"hostPath": "/srv", "containerPath": "/srv", "type": "tmpfs"}]}),
            "devices[0].containerEdits.mounts[0].type",
            "'tmpfs': herd applies bind mounts of host paths only",
        ),
        (
            spec(a={"hooks": [{"hookName": "onBoot", "path": "/bin/true"}]}),
            "devices[0].containerEdits.hooks[0].hookName",
            "'onBoot' is not one of prestart, createRuntime",
        ),
        (spec(a={"env": ["A=1"], "netDevices": []}), "devices[0].containerEdits.netDevices", "unknown field"),
    ],
)
def test_a_wrong_spec_names_its_file_and_field(
    write_spec: SpecWriter, document: dict[str, object], field: str, message: str
) -> None:
    path = write_spec("wrong.yaml", document)
    error = error_of(path)
    assert error.field == field
    assert str(error).startswith(f"{path}: field {field!r}: {message}"), str(error)


def test_a_device_defined_twice(write_spec: SpecWriter) -> None:
    document = spec(a={"env": ["A=1"]})
    document["devices"] *= 2
    error = error_of(write_spec("twice.json", document))
    assert (error.field, error.kind) == ("devices[1].name", "example.com/gpu")
    assert "device 'a' is defined twice" in str(error)


@pytest.mark.parametrize(
    ("version", "edits", "field", "needed"),
    [
        (
            "0.3.0",
            {"mounts": [{"hostPath": "/srv", "containerPath": "/srv", "type": "bind"}]},
            "devices[0].containerEdits.mounts[0].type",
            "0.4.0",
        ),
        (
            "0.4.0",
            {"deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/zero"}]},
            "devices[0].containerEdits.deviceNodes[0].hostPath",
            "0.5.0",
        ),
        ("0.6.0", {"additionalGids": [5]}, "devices[0].containerEdits.additionalGids", "0.7.0"),
    ],
)
def test_a_field_newer_than_the_declared_version(
    write_spec: SpecWriter, version: str, edits: dict[str, object], field: str, needed: str
) -> None:
    error = error_of(write_spec("old.yaml", spec(version=version, a=edits)))
    assert error.field == "cdiVersion"
    assert f"{version} is too old for field {field!r}, which needs CDI {needed} or later" in str(error)


def test_names_starting_with_a_digit_and_annotations_need_their_versions(write_spec: SpecWriter) -> None:
    digit = error_of(write_spec("digit.yaml", spec(version="0.4.0", **{"0": {"env": ["A=1"]}})))
    assert "field 'devices[0].name', which needs CDI 0.5.0" in str(digit)
    document = spec(version="0.5.0", a={"env": ["A=1"]})
    document["annotations"] = {"owner": "herd"}
    annotated = error_of(write_spec("annotated.yaml", document))
    assert "field 'annotations', which needs CDI 0.6.0" in str(annotated)
    document["cdiVersion"] = "0.6.0"
    assert read(write_spec("annotated.yaml", document)).kind == "example.com/gpu"


def test_malformed_yaml_and_json_say_where(write_spec: SpecWriter) -> None:
    yaml_error = error_of(write_spec("bad.yaml", "cdiVersion: 0.6.0\nkind: [example.com/gpu\ndevices: []\n"))
    assert str(yaml_error).startswith(f"{yaml_error.path}: not valid YAML: line 3 column 8")
    assert yaml_error.kind is None
    json_error = error_of(write_spec("bad.json", '{"cdiVersion": "0.6.0",}'))
    assert str(json_error).startswith(f"{json_error.path}: not valid JSON: line 1 column 24")


def test_a_spec_that_is_not_a_mapping(write_spec: SpecWriter) -> None:
    error = error_of(write_spec("list.yaml", "- 1\n- 2\n"))
    assert str(error) == f"{error.path}: expected a mapping, got list"
