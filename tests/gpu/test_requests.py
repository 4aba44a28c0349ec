"""Device requests as a run meets them: the core asks herd-gpu (through the installed plugins, as
`herd run` does) before anything starts, and turns what goes wrong into errors that name the test,
the machine and the field; `herd devices` lists what this host can grant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from herd import SpecError
from herd.declare.spec import parse_test
from herd.hooks.manager import Plugins
from herd.hooks.types import DeviceGrant, DeviceNode
from herd.run.resolve import resolve_backends, resolve_devices

from .conftest import FakeSysfs, SpecWriter, add_gpu, spec


def grants(*requests: str) -> tuple[DeviceGrant, ...]:
    """What the core resolves `requests` to for a machine on nspawn."""
    plugins = Plugins()
    test, infos = resolve_backends(
        parse_test("t", {"a": {"devices": list(requests)}}, "pass"), plugins, "nspawn"
    )
    return resolve_devices(test, plugins, infos)["a"]


def refused(*requests: str) -> str:
    with pytest.raises(SpecError) as caught:
        grants(*requests)
    return str(caught.value)


def test_host_paths_are_granted_as_they_are(cdi_dir: Path) -> None:
    [null, pts] = grants("/dev/null", "/dev/pts")
    assert null.nodes == (DeviceNode("/dev/null", "/dev/null", "c", 1, 3),)
    assert all(node.kind == "c" and node.path.startswith("/dev/pts/") for node in pts.nodes)
    assert refused("/dev/herd-nonexistent") == (
        "test 't', machine 'a', field 'devices': '/dev/herd-nonexistent': /dev/herd-nonexistent does not "
        "exist on this host (a host path request names a device node or a directory of them)"
    )
    assert "'/etc/hostname': /etc/hostname is not a device node" in refused("/etc/hostname")


def test_a_cdi_device_and_a_bad_spec(write_spec: SpecWriter) -> None:
    write_spec(
        "good.yaml", spec(g={"env": ["A=1"], "deviceNodes": [{"path": "/dev/g", "hostPath": "/dev/zero"}]})
    )
    [grant] = grants("example.com/gpu=g")
    assert (grant.environment, grant.nodes[0].guest_path) == ({"A": "1"}, "/dev/g")
    bad = write_spec("bad.yaml", spec(kind="broken.com/gpu", version="0.1.0", g={"env": ["A=1"]}))
    assert refused("broken.com/gpu=g") == (
        f"test 't', machine 'a', field 'devices': 'broken.com/gpu=g': {bad}: field 'cdiVersion': "
        "unknown version '0.1.0': herd reads CDI 0.3.0 to 0.8.0"
    )


def test_every_problem_is_listed_at_once(write_spec: SpecWriter, cdi_dir: Path) -> None:
    write_spec("bad.yaml", "cdiVersion: 0.6.0\nkind: x.com/y\ndevices:\n  - name: [\n")
    message = refused("other.com/gpu=0", "/dev/herd-nonexistent")
    assert message.startswith("2 problems in the test declaration:")
    assert (
        f"'other.com/gpu=0': no CDI spec in {cdi_dir} defines kind other.com/gpu (`herd devices` lists what "
        f"this host can grant); {cdi_dir}/bad.yaml: not valid YAML: line 5 column 1"
    ) in message


def test_nvidia_gpus_come_from_a_cdi_spec_first_and_else_from_the_driver(
    write_spec: SpecWriter, driver_root: Path
) -> None:
    for name, target in (("nvidia0", "zero"), ("nvidiactl", "null")):
        (driver_root / "dev" / name).symlink_to(f"/dev/{target}")
    add_gpu(driver_root, "0000:01:00.0", 0, "GPU-1")
    [discovered] = grants("nvidia.com/gpu=GPU-1")
    assert [node.guest_path for node in discovered.nodes] == ["/dev/nvidia0", "/dev/nvidiactl"]
    write_spec("nvidia.yaml", spec(kind="nvidia.com/gpu", **{"0": {"deviceNodes": [{"path": "/dev/null"}]}}))
    [from_spec] = grants("nvidia.com/gpu=0")
    assert [node.guest_path for node in from_spec.nodes] == ["/dev/null"]
    assert "define no device 'GPU-1' of kind nvidia.com/gpu (it has: 0)" in refused("nvidia.com/gpu=GPU-1")


def test_a_pci_function_is_refused_to_a_container(sysfs: FakeSysfs) -> None:
    sysfs.add("0000:01:00.0", 3, "vfio-pci")
    message = refused("pci:0000:01:00.0")
    assert message.startswith(
        "test 't', machine 'a', field 'devices': 'pci:0000:01:00.0' needs the 'pci' capability, which "
        "backend 'nspawn' lacks (backends that have it: "
    ), message


def test_herd_devices_lists_what_can_be_granted_and_what_is_wrong(
    write_spec: SpecWriter, driver_root: Path, sysfs: FakeSysfs
) -> None:
    good = write_spec("good.json", spec(a={"env": ["A=1"]}, b={"env": ["B=1"]}))
    (driver_root / "dev/nvidia0").symlink_to("/dev/zero")
    (driver_root / "dev/nvidiactl").symlink_to("/dev/null")
    sysfs.add("0000:01:00.0", 3, "vfio-pci")
    herd = str(Path(sys.executable).with_name("herd"))
    result = subprocess.run([herd, "devices"], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split(maxsplit=1) for line in result.stdout.splitlines()]
    assert [line[0] for line in lines] == [
        "example.com/gpu=a",
        "example.com/gpu=b",
        "nvidia.com/gpu=0",
        "nvidia.com/gpu=all",
        "pci:0000:01:00.0",
        "/dev/...",
    ], result.stdout
    assert lines[0][1] == f"CDI spec {good}"
    assert lines[4][1] == "PCI function bound to vfio-pci, IOMMU group 3 (for VMs)"

    bad = write_spec("bad.yaml", spec(version="0.0.1", c={"env": ["C=1"]}))
    result = subprocess.run([herd, "devices"], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 1
    assert f"problem: {bad}: field 'cdiVersion': unknown version '0.0.1'" in result.stdout
