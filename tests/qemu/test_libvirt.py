"""The QEMU backend's libvirt engine (`qemu-libvirt`), on the host's real libvirtd.

Every VM here is a real transient domain of qemu:///system; each case checks afterwards that its
run left nothing: no domain, no mounts under /run/herd, no links.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from herd import SpecError, Test
from herd.declare.spec import parse_test
from herd.hooks.types import Attachment, DeviceGrant, LaunchPlan, MachineRoot
from herd.host.residue import known_runs, leftovers
from herd.host.rundir import new_id, state_root
from herd.linux.cgroups import machine_cgroup
from tests.conftest import assert_nothing_left, run_and_check, start_herd_run
from tests.integration.test_packages import machines_with_packages_talk

if os.geteuid() != 0:
    pytest.skip("boots real VMs: needs root", allow_module_level=True)
libvirt = pytest.importorskip(
    "libvirt", reason="libvirt-python is not installed: pip install 'herd-qemu[libvirt]'"
)

from herd_qemu import connection, domainxml  # noqa: E402 (after the skips: it needs libvirt)
from herd_qemu.kernel import ROOT_TAG, Kernel  # noqa: E402

HERD = str(Path(sys.executable).with_name("herd"))
BACKEND = "qemu-libvirt"
VICTIM = """
import herd, os, time

def script(vm, start_all):
    start_all()
    open({ready!r}, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists({go!r}) and time.monotonic() < deadline:
        time.sleep(0.05)

test = herd.Test(name="victim", machines={{"vm": {{"backend": "qemu-libvirt"}}}}, script=script)
"""


@pytest.fixture(scope="module", autouse=True)
def libvirtd() -> None:
    try:
        connection.connect(connection.DEFAULT_URI)
    except Exception as error:
        pytest.skip(f"libvirtd does not answer: {error}")


def domain_names() -> set[str]:
    """The running domains of qemu:///system."""
    return {domain.name() for domain in connection.connect(connection.DEFAULT_URI).listAllDomains(0)}


def run_mounts(run_id: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if f"{state_root()}/{run_id}/" in line]


def test_a_vm_boots_as_a_domain_runs_commands_and_leaves_nothing(tmp_path: Path) -> None:
    reader = "[Service]\nExecStart=/bin/sh -c 'read line < /dev/ttyS0; echo \"$line\" > /srv/typed'\n"
    keys = "[Service]\nExecStart=/bin/sh -c 'read line < /dev/tty1; echo \"$line\" > /srv/keys'\n"
    seen: dict[str, Any] = {}

    def script(vm: Any, driver: Any) -> None:
        vm.start()
        seen["virt"] = vm.succeed("systemd-detect-virt").strip()
        seen["root"] = vm.succeed("findmnt -n -o FSTYPE,SOURCE /").split()
        name = domainxml.domain_name(driver.run_id, "vm")
        seen["xml"] = connection.connect(connection.DEFAULT_URI).lookupByName(name).XMLDesc(0)
        seen["mounts"] = run_mounts(driver.run_id)
        seen["name"] = name
        seen["mknod"] = vm.fail("mknod /var/null c 1 3 2>&1")  # libvirt's virtiofsd, as herd wraps it
        vm.succeed("echo 'hello from inside' > /dev/ttyS0")
        vm.wait_for_console_text("hello from inside", timeout=30)
        vm.wait_for_unit("reader.service", timeout=30)
        vm.wait_for_unit("keys.service", timeout=30)
        vm.send_chars("typed on the console\n")
        vm.wait_for_file("/srv/typed", timeout=30)
        seen["typed"] = vm.succeed("cat /srv/typed")
        for key in ("h", "shift-i", "ret"):  # QMP send-key, passed through libvirt
            vm.send_key(key)
        vm.wait_for_file("/srv/keys", timeout=30)
        seen["keys"] = vm.succeed("cat /srv/keys")
        vm.screenshot("screen")
        boot_id = vm.succeed("cat /proc/sys/kernel/random/boot_id")
        vm.reboot(timeout=120)
        seen["rebooted"] = vm.succeed("cat /proc/sys/kernel/random/boot_id") != boot_id

    machines = {"vm": {"backend": BACKEND, "units": {"reader.service": reader, "keys.service": keys}}}
    outcome = Test(name="libvirt-boot", machines=machines, script=script, timeout=600).run(
        output_dir=tmp_path / "out", terminal=None
    )
    assert outcome.passed, outcome.error
    assert_nothing_left(outcome.run_id)
    assert seen["virt"] in ("qemu", "kvm")
    assert seen["root"] == ["virtiofs", ROOT_TAG]
    assert (seen["typed"], seen["keys"], seen["rebooted"]) == ("typed on the console\n", "hI\n", True)
    assert "Operation not permitted" in seen["mknod"]
    domain = ET.fromstring(seen["xml"])
    [tag] = domain.find("metadata")  # type: ignore[misc]
    assert (tag.tag, tag.get("run"), tag.get("machine")) == (domainxml.METADATA_TAG, outcome.run_id, "vm")
    assert domain.get("type") in ("qemu", "kvm")
    root = domain.find("devices/filesystem/source")
    assert root is not None and root.get("dir", "").startswith(f"{state_root()}/{outcome.run_id}/")
    assert len(seen["mounts"]) >= 3, "the host's /usr, and /etc and /var as overlays, mounted on the host"
    assert seen["name"] not in domain_names()
    assert run_mounts(outcome.run_id) == []
    assert (tmp_path / "out" / "screen.png").read_bytes().startswith(b"\x89PNG")
    assert "qemu-system-x86_64" in (tmp_path / "out" / "vm" / "qemu.log").read_text()  # libvirt's, moved
    assert not any(log.exists() for log in connection.log_files(seen["name"]))
    assert "hello from inside" in (tmp_path / "out" / "vm" / "console.log").read_text(errors="replace")


def test_monitor_commands_and_qmp_events_pass_through_libvirt(tmp_path: Path) -> None:
    def script(vm) -> None:  # type: ignore[no-untyped-def]
        vm.send_monitor_command("stop")
        time.sleep(0.5)  # the event comes before the wait: libvirt passes events on from the start
        assert vm.wait_for_qmp_event(lambda event: event["event"] == "STOP", timeout=30)["event"] == "STOP"
        assert "paused" in vm.send_monitor_command("info status")
        vm.send_monitor_command("cont")
        vm.wait_for_qmp_event(lambda event: event["event"] == "RESUME", timeout=30)
        assert vm.succeed("echo resumed") == "resumed\n"

    test = Test(name="monitor", machines={"vm": {"backend": BACKEND}}, script=script)
    outcome = test.run(output_dir=tmp_path / "out", terminal=None)
    assert outcome.passed, outcome.error
    assert_nothing_left(outcome.run_id)


def test_qemu_dying_mid_test_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    def script(doomed: Any, driver: Any) -> None:
        doomed.start()
        name = domainxml.domain_name(driver.run_id, "doomed")
        subprocess.run(
            ["pkill", "-KILL", "-f", f"^/usr/bin/qemu-system-x86_64 -name guest={name},"], check=True
        )
        doomed.succeed("true")

    test = Test(name="libvirt-dies", machines={"doomed": {"backend": BACKEND}}, script=script, timeout=300)
    outcome = test.run(output_dir=tmp_path / "out", terminal=None)
    assert not outcome.passed
    # libvirt reports the end once it has cleaned up after QEMU, which may come after herd noticed
    assert re.search(
        r"machine doomed is not running \((QEMU ended unexpectedly \(libvirt domain herd-"
        r"|QEMU is still running; its agent: )",
        str(outcome.error),
    )
    assert_nothing_left(outcome.run_id)


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A `herd run` on qemu-libvirt, paused in its script with its VM up."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    test_file = tmp_path / "victim.py"
    test_file.write_text(textwrap.dedent(VICTIM.format(ready=str(ready), go=str(go))))
    process, run_id = start_herd_run(str(test_file), "-o", str(tmp_path / "out"))
    deadline = time.monotonic() + 180
    while not ready.exists():
        assert time.monotonic() < deadline, "the VM did not boot"
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    yield process, run_id
    go.touch()
    process.kill()
    process.wait()


def test_herd_clean_removes_what_a_killed_run_left(victim: tuple[subprocess.Popen[str], str]) -> None:
    process, run_id = victim
    name = domainxml.domain_name(run_id, "vm")
    assert name in domain_names()
    assert f"libvirt domain {name} ({connection.DEFAULT_URI})" in connection.leftovers(run_id)
    process.kill()
    process.wait()
    # libvirtd destroys the domain as herd's connection closes (it was started AUTODESTROY)...
    deadline = time.monotonic() + 30
    while name in domain_names():
        assert time.monotonic() < deadline, "libvirtd did not destroy the dead run's domain"
        time.sleep(0.1)
    # ...and the root stays mounted on the host until the reaper comes.
    assert run_mounts(run_id), "the root's mounts should outlive a SIGKILLed herd"
    assert run_id in known_runs()
    result = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
    assert f"run {run_id}: removed" in result.stdout
    assert run_mounts(run_id) == []
    assert_nothing_left(run_id)


def test_herd_clean_destroys_a_domain_of_a_dead_run(tmp_path: Path) -> None:
    """A domain that outlived its run (say, libvirtd restarted and forgot to autodestroy it) is
    found by its metadata and destroyed."""
    run_id = new_id()
    while run_id in known_runs():
        run_id = new_id()
    (state_root() / run_id).mkdir(parents=True)  # the mark of a dead run: its state, no lock
    name = domainxml.domain_name(run_id, "ghost")
    domain = ET.Element("domain", type="qemu")
    ET.SubElement(domain, "name").text = name
    ET.SubElement(ET.SubElement(domain, "metadata"), domainxml.METADATA_TAG, run=run_id, machine="ghost")
    ET.SubElement(domain, "memory", unit="MiB").text = "32"
    ET.SubElement(ET.SubElement(domain, "os"), "type", arch="x86_64", machine="pc").text = "hvm"
    devices = ET.SubElement(domain, "devices")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    ghost = connection.connect(connection.DEFAULT_URI).createXML(
        ET.tostring(domain, encoding="unicode"), libvirt.VIR_DOMAIN_START_PAUSED
    )
    try:
        assert f"libvirt domain {name} ({connection.DEFAULT_URI})" in leftovers(run_id, _plugins())
        result = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
        assert f"libvirt domain {name} ({connection.DEFAULT_URI})" in result.stdout
        assert name not in domain_names()
        assert_nothing_left(run_id)
    finally:
        if name in domain_names():
            ghost.destroy()


def test_a_dead_run_whose_hypervisor_does_not_answer_is_kept_for_a_later_clean() -> None:
    """A run's machines record their URI; a remote one that does not answer keeps the run (its
    domains may still run there), and says so."""
    run_id = new_id()
    while run_id in known_runs():
        run_id = new_id()
    machine = state_root() / run_id / "machines" / "far"
    machine.mkdir(parents=True)
    uri = "qemu+tcp://127.0.0.2:9/system"  # nothing listens on the discard port
    (machine / connection.URI_FILE).write_text(f"{uri}\n")
    try:
        result = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
        assert f"run {run_id}: removed 1" in result.stdout
        assert f"failed: cannot reach libvirt at {uri}: " in result.stdout
        assert machine.is_dir()
    finally:
        (machine / connection.URI_FILE).unlink()
    result = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
    assert f"state directory {state_root() / run_id}" in result.stdout
    assert_nothing_left(run_id)


def test_the_domain_xml_is_valid_for_libvirt(tmp_path: Path) -> None:
    """Every element herd writes, PCI functions included (no host here has one to pass through),
    as libvirt reads it: defined (never started) with validation against its schema."""
    run_id = new_id()
    spec = parse_test("xml", {"vm": {"backend": BACKEND, "memory": 512, "cpus": 0.5}}, "pass")
    root = tmp_path / "root"
    root.mkdir()
    plan = LaunchPlan(
        run_id=run_id,
        machine=spec.machines[0],
        index=0,
        state_dir=tmp_path,
        log_dir=tmp_path,
        root=MachineRoot(directory=root, read_only_binds=(), overlays=()),
        attachments=(Attachment("default", "herdxb0", "herdx1", "eth1", "02:68:64:00:00:01", ()),),
        cgroup=machine_cgroup(run_id, "vm"),
        grants=(DeviceGrant(request="pci:0000:01:00.1", pci_functions=("0000:01:00.1",)),),
    )
    kernel = Kernel(tmp_path / "vmlinux", "6.1.0", tmp_path / "initramfs.cpio")
    sockets = domainxml.Sockets(tmp_path / "console.sock", tmp_path / "agent.sock")
    xml = domainxml.build(plan, kernel, "tcg", sockets, "6f2b1c36-6f5e-4c53-9d0e-3c1f7bb0d4a1")
    defined = connection.connect(connection.DEFAULT_URI).defineXMLFlags(
        xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE
    )
    try:
        domain = ET.fromstring(defined.XMLDesc(0))
    finally:
        defined.undefine()
    assert domain.get("type") == "qemu" and domain.findtext("memory") == str(512 * 1024)
    assert domain.findtext("vcpu") == "1"
    assert domain.findtext("cpu/model") == "Nehalem"
    address = domain.find("devices/hostdev/source/address")
    assert address is not None and address.attrib == {
        "domain": "0x0000", "bus": "0x01", "slot": "0x00", "function": "0x1"
    }  # fmt: skip
    target = domain.find("devices/interface/target")
    assert target is not None and target.attrib == {"dev": "herdx1", "managed": "no"}
    assert domain.find("devices/filesystem/target").get("dir") == ROOT_TAG  # type: ignore[union-attr]
    assert domain.find("devices/filesystem/binary/cache").get("mode") == "always"  # type: ignore[union-attr]


def _plugins() -> Any:
    from herd.hooks.manager import Plugins

    return Plugins().load_all()


def test_an_unreachable_uri_fails_the_boot_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    uri = f"qemu+unix:///system?socket={tmp_path}/nothing-listens-here"
    test = Test(
        name="libvirt-bad-uri",
        machines={"vm": {"backend": BACKEND, "options": {"uri": uri}}},
        script="vm.start()",
    )
    outcome = test.run(output_dir=tmp_path / "out", terminal=None)
    assert not outcome.passed
    assert f"machine vm: cannot reach libvirt at {uri}: " in str(outcome.error)
    assert_nothing_left(outcome.run_id)


def test_a_uri_that_is_not_one_is_refused_before_anything_starts() -> None:
    with pytest.raises(SpecError, match=r"machine 'vm', field 'options': uri must be a libvirt URI"):
        Test(
            name="libvirt-not-a-uri",
            machines={"vm": {"backend": BACKEND, "options": {"uri": "system"}}},
            script="vm.start()",
        ).run(terminal=None)


def test_domains_with_different_packages_talk_to_each_other(apt_ready: None, tmp_path: Path) -> None:
    """The integration suite's test of `packages` (tests/integration/test_packages.py), as
    transient domains: the layer is mounted on the host for libvirt's virtiofsd."""
    machines_with_packages_talk(partial(run_and_check, backend=BACKEND, output_dir=tmp_path / "out"))
