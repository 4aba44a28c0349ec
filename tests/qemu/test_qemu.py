"""QEMU VMs booted for real (under TCG where KVM fails, as on herd's CI machines)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from herd import CapabilityError, MachineError, Test
from herd.errors import HerdError, SpecError
from herd.run.driver import Outcome
from herd_qemu import kernel, vm
from tests.conftest import ROOT, assert_nothing_left, run_and_check

HERD = str(Path(sys.executable).with_name("herd"))


@pytest.fixture
def run_vm(tmp_path: Path) -> Callable[[Test], Outcome]:
    return partial(run_and_check, backend="qemu", output_dir=tmp_path / "out")


def test_a_vm_boots_its_own_kernel_with_the_hosts_userland(run_vm: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, version = kernel.find_kernel()
    accelerator, _ = vm.accelerator()

    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        assert m.succeed("uname -r").strip() == version
        assert m.succeed("systemd-detect-virt --vm").strip() in {"qemu", "kvm"}
        assert m.succeed("findmnt -no FSTYPE /").strip() == "virtiofs"
        if accelerator == "tcg":  # x86-64-v2, without the XSAVE that emulation pays for
            flags = m.succeed("grep -m1 ^flags /proc/cpuinfo").split()
            assert "sse4_2" in flags and "xsave" not in flags
        # file capabilities cross the share: an unprivileged user pings with ping's cap_net_raw
        m.succeed("su -s /bin/sh nobody -c 'ping -c 1 -W 5 127.0.0.1'")

    outcome = run_vm(Test(name="kernel", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error
    journal = tmp_path / "out" / "m" / "journal"
    assert any(journal.rglob("system.journal")), "the VM's journal lands in the output directory"


def test_console_keyboard_and_screen(run_vm: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    reader = "[Service]\nExecStart=/bin/sh -c 'read line < /dev/ttyS0; echo \"$line\" > /srv/typed'\n"
    keys = "[Service]\nExecStart=/bin/sh -c 'read line < /dev/tty1; echo \"$line\" > /srv/keys'\n"

    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        m.succeed("echo 'hello from inside' > /dev/ttyS0")
        assert m.wait_for_console_text(r"hello from \w+", timeout=30) == "hello from inside"
        m.wait_for_unit("reader.service")
        m.wait_for_unit("keys.service")
        m.send_chars("typed on the console\n")
        m.wait_for_file("/srv/typed")
        assert m.succeed("cat /srv/typed") == "typed on the console\n"
        m.send_key("h")
        m.send_key("shift-i", delay=None, log=False)
        m.send_key(key="ret", delay=0.01, log=True)
        m.wait_for_file("/srv/keys")
        assert m.succeed("cat /srv/keys") == "hI\n"
        path = m.screenshot("screen")
        assert path == tmp_path / "out" / "screen.png"

    machines = {"m": {"units": {"reader.service": reader, "keys.service": keys}}}
    outcome = run_vm(Test(name="console", machines=machines, script=script))
    assert outcome.passed, outcome.error
    png = (tmp_path / "out" / "screen.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 320 and height >= 200
    assert "hello from inside" in (tmp_path / "out" / "m" / "console.log").read_text(errors="replace")
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "m: sending key 'h'" in log and "m: sending key 'ret'" in log and "'shift-i'" not in log


def test_the_monitor_its_events_and_the_virtual_terminals(run_vm: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        assert "running" in m.send_monitor_command("info status")
        m.send_monitor_command("stop")
        assert m.wait_for_qmp_event(lambda event: event["event"] == "STOP", timeout=30)["event"] == "STOP"
        assert "paused" in m.send_monitor_command("info status")
        m.send_monitor_command("cont")
        m.wait_for_qmp_event(lambda event: event["event"] == "RESUME", timeout=30)
        m.succeed("echo 'written on the first terminal' > /dev/tty1")
        m.wait_until_tty_matches(1, "written on the first terminal", timeout=30)
        assert "written on the first terminal" in m.get_tty_text("1")
        m.dump_tty_contents(1)

    outcome = run_vm(Test(name="monitor", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "m: tty1:" in log and "m: monitor: stop" in log


def test_a_reboot_keeps_the_disk_and_boots_anew(run_vm: Callable) -> None:  # type: ignore[type-arg]
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        boot_id = m.succeed("cat /proc/sys/kernel/random/boot_id")
        m.succeed("echo kept > /var/kept")
        m.reboot()
        assert m.succeed("cat /proc/sys/kernel/random/boot_id") != boot_id
        assert m.succeed("cat /var/kept") == "kept\n"

    outcome = run_vm(Test(name="reboot", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error


def test_teardown_keeps_the_journal_without_a_power_off(run_vm: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        m.succeed("logger -t herd-test 'written just before the end'")

    outcome = run_vm(Test(name="teardown", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error
    assert re.search(r"m: synced and stopped in [0-9.]+ s", (tmp_path / "out" / "log.txt").read_text())
    journal = subprocess.run(
        [
            "journalctl",
            "--directory",
            str(tmp_path / "out" / "m" / "journal"),
            "-t",
            "herd-test",
            "-o",
            "cat",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert journal.strip() == "written just before the end"


def test_qemu_dying_mid_test_is_reported_and_cleaned_up(run_vm: Callable) -> None:  # type: ignore[type-arg]
    def script(doomed) -> None:  # type: ignore[no-untyped-def]
        doomed.start()
        subprocess.run(["pkill", "-KILL", "-f", "^qemu-system-x86_64 -name doomed "], check=True)
        doomed.succeed("true")

    outcome = run_vm(Test(name="dies", machines={"doomed": {}}, script=script))
    assert not outcome.passed
    assert isinstance(outcome.error, MachineError)
    assert re.search(r"machine doomed is not running \(QEMU exited with status -9", str(outcome.error))


def test_a_vm_that_does_not_boot_in_time_shows_its_console(run_vm: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    outcome = run_vm(Test(name="slow", machines={"m": {"boot_timeout": 1}}, script="m.start()"))
    assert not outcome.passed
    message = str(outcome.error)
    assert (
        "machine m did not boot: it did not boot within 1 s; its agent never greeted (the guest did "
        "not get as far as starting it).\nThe end of its console" in message
    )
    assert f"The end of {tmp_path / 'out' / 'm' / 'qemu.log'}:" in message


def test_a_boot_that_systemd_does_not_finish_says_what_it_waits_for(run_vm: Callable) -> None:  # type: ignore[type-arg]
    stall = "[Service]\nType=oneshot\nExecStart=/bin/sleep infinity\n"
    machines = {"m": {"boot_timeout": 30, "units": {"stall.service": stall}}}
    outcome = run_vm(Test(name="stalls", machines=machines, script="m.start()"))
    assert not outcome.passed
    message = str(outcome.error)
    assert "did not boot within 30 s; its agent greeted, but systemd did not finish booting.\n" in message
    assert re.search(
        r"^Its systemd's jobs:\n(    .*\n)*    +\d+ +stall\.service +start +running$", message, re.M
    )
    for step in ("modules loaded", "root mounted", "starting systemd"):  # the initramfs's progress
        assert f"    herd initramfs: {step}\n" in message, message


def test_containers_lack_the_vm_methods_and_hear_which_backend_has_them(tmp_path: Path) -> None:
    def script(c) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(CapabilityError) as caught:
            c.screenshot("never")
        assert "needs the 'screenshot' capability, which backend 'nspawn' (container)" in str(caught.value)
        assert "backends that can: qemu" in str(caught.value)

    outcome = Test(name="cap", machines={"c": {}}, script=script).run(
        backend="nspawn", output_dir=tmp_path / "out", terminal=None
    )
    assert outcome.passed, outcome.error
    assert_nothing_left(outcome.run_id)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"kernel": "/nonexistent/vmlinuz"}, "kernel '/nonexistent/vmlinuz' is not a file"),
        ({"accelerator": "hvf"}, "accelerator must be one of auto, kvm, tcg, got 'hvf'"),
        ({"memory": 2048}, "unknown option 'memory'; qemu options: kernel"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(options: dict[str, object], problem: str) -> None:
    test = Test(name="bad", machines={"m": {"backend": "qemu", "options": options}}, script="pass")
    with pytest.raises(SpecError) as caught:
        test.run(terminal=None)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("backend", ["qemu", "qemu-libvirt"])
def test_limits_a_vm_cannot_have_are_refused_before_anything_starts(backend: str) -> None:
    machines = {"small": {"backend": backend, "memory": "64M"}, "wide": {"backend": backend, "cpus": 300}}
    with pytest.raises(SpecError) as caught:
        Test(name="limits", machines=machines, script="pass").run(terminal=None)
    assert caught.value.problems == [
        "test 'limits', machine 'small', field 'memory': a VM needs at least 128 MiB (what the host "
        "image boots in), got 64 MiB",
        "test 'limits', machine 'wide', field 'cpus': a VM has at most 255 vCPUs, got 300",
    ]


def test_a_vms_memory_and_vcpus_follow_the_machine_fields(run_vm: Callable) -> None:  # type: ignore[type-arg]
    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        assert m.succeed("nproc").strip() == "2", "1.5 CPUs are 2 vCPUs: a fraction is rounded up"
        total_kib = int(m.succeed("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
        assert 600 << 10 < total_kib <= 768 << 10, f"MemTotal {total_kib} kB for 768 MiB"

    outcome = run_vm(Test(name="vm-limits", machines={"m": {"memory": "768M", "cpus": 1.5}}, script=script))
    assert outcome.passed, outcome.error


def test_the_pids_limit_holds_every_process_of_the_guest_and_no_kernel_thread(run_vm: Callable) -> None:  # type: ignore[type-arg]
    outside = (  # the guest's processes but its kernel's threads (kthreadd, pid 2, and its children)
        "for pid in $(ps -e -o pid=,ppid= | awk '$1 != 2 && $2 != 2 {print $1}'); do "
        "cgroup=$(cat /proc/$pid/cgroup 2>/dev/null) || continue; "
        'case "$cgroup" in 0::/herd/*) ;; *) echo "$pid $cgroup" ;; esac; done'
    )

    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        assert m.succeed("cat /sys/fs/cgroup/herd/pids.max") == "200\n"
        assert m.succeed("cat /proc/1/cgroup") == "0::/herd/init.scope\n"
        assert m.succeed("su -s /bin/sh nobody -c 'cat /proc/self/cgroup'").startswith("0::/herd/")
        assert m.succeed(outside) == ""
        assert int(m.succeed("ps -e -o ppid= | grep -cx ' *2'")) > 0, "kernel threads, outside"
        # the commands get the machine's whole `pids`, not systemd's default share for a unit (15%)
        m.succeed("for i in $(seq 150); do sleep 3 & done; wait")

    outcome = run_vm(Test(name="vm-pids", machines={"m": {"pids": 200}}, script=script))
    assert outcome.passed, outcome.error


def test_what_the_guests_root_writes_gives_nothing_of_host_roots(run_vm: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """virtiofsd writes as host root: no device node, and what the guest writes into its journal
    reaches the run's output as plain files of herd's (no set-user-id bit, link or FIFO)."""
    journal = tmp_path / "out" / "m" / "journal"

    def script(m) -> None:  # type: ignore[no-untyped-def]
        m.start()
        assert "Operation not permitted" in m.fail("mknod /var/null c 1 3 2>&1")
        m.succeed("cp /bin/sh /var/log/journal/shell && chmod 4755 /var/log/journal/shell")
        m.succeed("ln -s /etc/hostname /var/log/journal/link && mkfifo /var/log/journal/fifo")
        state = journal.readlink().parents[1]  # while the VM runs: a link to its twin
        assert state.stat().st_mode & 0o777 == 0o700, "the state directory is root's alone"

    outcome = run_vm(Test(name="vm-writes", machines={"m": {}}, script=script))
    assert outcome.passed, outcome.error
    assert journal.is_dir() and not journal.is_symlink()
    shell = journal / "shell"
    assert shell.read_bytes() == Path("/bin/sh").read_bytes()
    assert shell.stat().st_mode & 0o7777 == 0o644
    assert sorted(path.name for path in journal.iterdir() if not path.is_dir()) == ["shell"]


def test_no_kernel_names_the_package_that_provides_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kernel, "BOOT", tmp_path)
    with pytest.raises(
        Exception, match=r"/boot has no vmlinuz-\*; install one \(apt-get install linux-image-amd64\)"
    ):
        kernel.find_kernel()


def test_a_kernel_without_the_modules_vms_need_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "6.99-bare").mkdir()
    (tmp_path / "6.99-bare" / "modules.dep").write_text("kernel/drivers/virtio/virtio_pci.ko:\n")
    (tmp_path / "6.99-bare" / "modules.builtin").write_text("")
    monkeypatch.setattr(kernel, "MODULES", tmp_path)
    with pytest.raises(HerdError, match=r"kernel 6\.99-bare lacks the module .*, which VMs need"):
        kernel.modules_in_order("6.99-bare")


def test_missing_qemu_is_named_with_its_package(tmp_path: Path) -> None:
    path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        outcome = Test(name="noqemu", machines={"m": {"backend": "qemu"}}, script="m.start()").run(
            output_dir=tmp_path / "out", terminal=None
        )
    finally:
        os.environ["PATH"] = path
    assert not outcome.passed
    assert "qemu-system-x86_64 not found: apt-get install qemu-system-x86" in str(outcome.error)
    assert_nothing_left(outcome.run_id)


def test_asking_for_kvm_where_it_fails_is_an_error(run_vm: Callable) -> None:  # type: ignore[type-arg]
    accel, why = vm.accelerator()
    if accel == "kvm":
        pytest.skip("KVM works on this host")
    outcome = run_vm(
        Test(name="kvm", machines={"m": {"options": {"accelerator": "kvm"}}}, script="m.start()")
    )
    assert not outcome.passed
    assert f"the machine asks for KVM, but {why}" in str(outcome.error)


def test_the_mixed_example_puts_a_container_and_a_vm_on_one_network(tmp_path: Path) -> None:
    result = subprocess.run(
        [HERD, "run", str(ROOT / "examples" / "mixed.py"), "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("PASS mixed")
    for run_id in re.findall(r"· run ([a-z0-9]{5})", result.stderr):
        assert_nothing_left(run_id)
