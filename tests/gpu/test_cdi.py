"""CDI devices on the host: spec directories and their priority, names, grants, and what is wrong."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from herd.hooks.types import DeviceNode
from herd_gpu import cdi
from herd_gpu.nodes import DeviceError

from .conftest import SpecWriter, spec

NULL = DeviceNode("/dev/null", "/dev/null", "c", 1, 3, "rwm")


def test_spec_dirs_default_to_etc_and_var_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cdi.SPEC_DIRS_VARIABLE, raising=False)
    assert cdi.spec_dirs() == ("/etc/cdi", "/var/run/cdi")
    monkeypatch.setenv(cdi.SPEC_DIRS_VARIABLE, "/a::/b")
    assert cdi.spec_dirs() == ("/a", "/b")


def test_a_device_gets_its_specs_edits_then_its_own(write_spec: SpecWriter, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    document = spec(
        g0={
            "env": ["GPU=0", "SHARED=device"],
            "deviceNodes": [{"path": "/dev/herd-gpu0", "hostPath": "/dev/zero", "permissions": "rw"}],
        }
    )
    document["containerEdits"] = {
        "env": ["SHARED=spec", "DRIVER=fake"],
        "deviceNodes": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}],
        "mounts": [
            {"hostPath": str(model), "containerPath": "/opt/model.bin", "options": ["ro", "bind"]},
            {"hostPath": str(tmp_path), "containerPath": "/srv/data"},
        ],
    }
    write_spec("example.yaml", document)
    grant = cdi.find(cdi.load(), "example.com/gpu=g0")
    assert grant is not None
    assert grant.request == "example.com/gpu=g0"
    assert grant.nodes == (NULL, DeviceNode("/dev/zero", "/dev/herd-gpu0", "c", 1, 5, "rw"))
    assert grant.mounts == ((str(model), "/opt/model.bin", True), (str(tmp_path), "/srv/data", False))
    assert dict(grant.environment) == {"GPU": "0", "SHARED": "device", "DRIVER": "fake"}
    assert grant.pci_functions == ()


def test_a_later_directory_overrides_and_one_directory_conflicts(
    write_spec: SpecWriter, cdi_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run-cdi"
    runtime.mkdir()
    monkeypatch.setenv(cdi.SPEC_DIRS_VARIABLE, f"{cdi_dir}:{runtime}:{tmp_path / 'absent'}")
    write_spec("a.yaml", spec(a={"env": ["FROM=etc"]}, b={"env": ["FROM=etc"]}))
    write_spec("a.json", spec(a={"env": ["FROM=runtime"]}), directory=runtime)
    registry = cdi.load()
    assert registry.problems == []
    assert cdi.find(registry, "example.com/gpu=a").environment == {"FROM": "runtime"}  # type: ignore[union-attr]
    assert cdi.find(registry, "example.com/gpu=b").environment == {"FROM": "etc"}  # type: ignore[union-attr]

    write_spec("b.yaml", spec(b={"env": ["FROM=other"]}))
    with pytest.raises(
        DeviceError,
        match=r"b\.yaml: field 'devices\[0\]\.name': example\.com/gpu=b is defined by .*a\.yaml too",
    ):
        cdi.find(cdi.load(), "example.com/gpu=a")


def test_unknown_names_and_kinds(write_spec: SpecWriter) -> None:
    path = write_spec("example.yaml", spec(a={"env": ["A=1"]}, b={"env": ["B=1"]}))
    registry = cdi.load()
    assert cdi.find(registry, "other.com/gpu=a") is None
    with pytest.raises(DeviceError) as caught:
        cdi.find(registry, "example.com/gpu=c")
    assert str(caught.value) == f"{path} define no device 'c' of kind example.com/gpu (it has: a, b)"


def test_a_missing_node_names_the_file_and_field(write_spec: SpecWriter, tmp_path: Path) -> None:
    missing = tmp_path / "nvidia9"
    path = write_spec(
        "gpu.yaml", spec(g={"deviceNodes": [{"path": "/dev/nvidia9", "hostPath": str(missing)}]})
    )
    with pytest.raises(DeviceError) as caught:
        cdi.find(cdi.load(), "example.com/gpu=g")
    assert str(caught.value) == (
        f"{path}: field 'devices[0].containerEdits.deviceNodes[0].hostPath': "
        f"{missing} does not exist on this host"
    )


def test_a_node_that_is_not_what_the_spec_says(write_spec: SpecWriter, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    write_spec("gpu.yaml", spec(g={"deviceNodes": [{"path": str(plain)}]}))
    with pytest.raises(
        DeviceError,
        match=r"field 'devices\[0\]\.containerEdits\.deviceNodes\[0\]\.path': .* is not a device node",
    ):
        cdi.find(cdi.load(), "example.com/gpu=g")
    write_spec("gpu.yaml", spec(g={"deviceNodes": [{"path": "/dev/null", "type": "b"}]}))
    with pytest.raises(
        DeviceError, match=r"deviceNodes\[0\]\.type': b does not match /dev/null on this host \(c\)"
    ):
        cdi.find(cdi.load(), "example.com/gpu=g")
    write_spec("gpu.yaml", spec(g={"deviceNodes": [{"path": "/dev/null", "minor": 5}]}))
    with pytest.raises(
        DeviceError, match=r"deviceNodes\[0\]\.minor': 5 does not match /dev/null on this host \(3\)"
    ):
        cdi.find(cdi.load(), "example.com/gpu=g")


def test_a_missing_mount_source(write_spec: SpecWriter, tmp_path: Path) -> None:
    write_spec(
        "gpu.yaml", spec(g={"mounts": [{"hostPath": str(tmp_path / "gone"), "containerPath": "/srv/x"}]})
    )
    with pytest.raises(
        DeviceError,
        match=r"field 'devices\[0\]\.containerEdits\.mounts\[0\]\.hostPath': .*gone does not exist",
    ):
        cdi.find(cdi.load(), "example.com/gpu=g")


def test_a_broken_spec_blocks_its_kind_and_unreadable_ones_stay_aside(write_spec: SpecWriter) -> None:
    write_spec("good.yaml", spec(kind="good.com/gpu", a={"env": ["A=1"]}))
    write_spec("broken.yaml", spec(version="7.0.0", a={"env": ["A=1"]}))
    write_spec("garbage.yaml", "kind: [\n")
    registry = cdi.load()
    assert len(registry.problems) == 2
    assert cdi.find(registry, "good.com/gpu=a") is not None
    with pytest.raises(DeviceError, match=r"broken\.yaml: field 'cdiVersion': unknown version '7\.0\.0'"):
        cdi.find(registry, "example.com/gpu=a")
    [unreadable] = registry.problems_of(None)
    assert "garbage.yaml: not valid YAML" in str(unreadable)


def test_hooks_and_other_unapplied_edits_are_reported(
    write_spec: SpecWriter, caplog: pytest.LogCaptureFixture
) -> None:
    hook = {
        "hookName": "createContainer",
        "path": "/usr/bin/nvidia-cdi-hook",
        "args": ["nvidia-cdi-hook", "update-ldcache"],
    }
    write_spec("gpu.yaml", spec(version="0.7.0", g={"hooks": [hook], "additionalGids": [44]}))
    with caplog.at_level(logging.WARNING, logger="herd.gpu"):
        grant = cdi.find(cdi.load(), "example.com/gpu=g")
    assert grant is not None and grant.nodes == ()
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        "herd does not run CDI hooks: example.com/gpu=g skips devices[0].containerEdits.hooks[0] "
        "(createContainer hook /usr/bin/nvidia-cdi-hook update-ldcache)" in m
        for m in messages
    ), messages
    assert any("herd does not apply devices[0].containerEdits.additionalGids" in m for m in messages), (
        messages
    )


def test_specs_with_other_extensions_are_not_read(write_spec: SpecWriter) -> None:
    write_spec("notes.txt", "not a spec")
    write_spec("old.yaml.bak", "not a spec either")
    registry = cdi.load()
    assert (registry.devices, registry.problems) == ({}, [])


def test_a_fifo_is_refused(write_spec: SpecWriter, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    write_spec("gpu.yaml", spec(g={"deviceNodes": [{"path": str(fifo), "type": "p"}]}))
    with pytest.raises(DeviceError, match=r"deviceNodes\[0\]\.type': herd grants device nodes, not FIFOs"):
        cdi.find(cdi.load(), "example.com/gpu=g")
