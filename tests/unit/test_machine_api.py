"""The Machine API: its methods take the NixOS test driver's parameters, in its order, with its
defaults, so that a script written for the driver calls them unchanged; and they behave as the
driver's do, on an in-memory machine (its waits: test_machine_waits.py)."""

from __future__ import annotations

import inspect
import os
import sys
import time
from pathlib import Path

import pytest

from herd import ArgumentError, CapabilityError, CommandFailed, HerdError, WaitTimeout
from herd.hooks.types import Capability, StopMode
from herd.run.machine import Machine

from .conftest import MakeMachine
from .inmemory import Reply

EMPTY = inspect.Parameter.empty
VARIADIC = inspect.Parameter.VAR_POSITIONAL
# Each method of the driver's Machine that herd has, with its parameters (but self) and their
# defaults (EMPTY: none), as the driver declares them.
DRIVER_PARAMETERS: dict[str, list[tuple[str, object]]] = {
    "start": [("allow_reboot", False)],
    "shutdown": [],
    "crash": [],
    "reboot": [],
    "is_up": [],
    "execute": [("command", EMPTY), ("check_return", True), ("check_output", True), ("timeout", 900)],
    "succeed": [("commands", VARIADIC), ("timeout", None)],
    "fail": [("commands", VARIADIC), ("timeout", None)],
    "wait_until_succeeds": [("command", EMPTY), ("timeout", 900)],
    "wait_until_fails": [("command", EMPTY), ("timeout", 900)],
    "wait_for_unit": [("unit", EMPTY), ("user", None), ("timeout", 900)],
    "wait_for_file": [("filename", EMPTY), ("timeout", 900)],
    "wait_for_open_port": [("port", EMPTY), ("addr", "localhost"), ("timeout", 900)],
    "wait_for_closed_port": [("port", EMPTY), ("addr", "localhost"), ("timeout", 900)],
    "systemctl": [("q", EMPTY), ("user", None)],
    "get_unit_info": [("unit", EMPTY), ("user", None)],
    "get_unit_property": [("unit", EMPTY), ("property", EMPTY), ("user", None)],
    "require_unit_state": [("unit", EMPTY), ("require_state", "active")],
    "start_job": [("jobname", EMPTY), ("user", None)],
    "stop_job": [("jobname", EMPTY), ("user", None)],
    "copy_from_host": [("source", EMPTY), ("target", EMPTY)],
    "copy_from_machine": [("source", EMPTY), ("target_dir", "")],
    "copy_from_vm": [("source", EMPTY), ("target_dir", "")],
    "sleep": [("secs", EMPTY)],
    "log": [("msg", EMPTY)],
    "block": [],
    "unblock": [],
    "forward_port": [("host_port", 8080), ("guest_port", 80)],
    "screenshot": [("filename", EMPTY)],
    "send_key": [("key", EMPTY), ("delay", 0.01), ("log", True)],
    "send_chars": [("chars", EMPTY), ("delay", 0.01)],
    "wait_for_console_text": [("regex", EMPTY), ("timeout", None)],
}


@pytest.mark.parametrize("method", sorted(DRIVER_PARAMETERS))
def test_a_method_takes_the_drivers_parameters_in_its_order_with_its_defaults(method: str) -> None:
    parameters = list(inspect.signature(getattr(Machine, method)).parameters.values())[1:]
    expected = DRIVER_PARAMETERS[method]
    ours = [(p.name, VARIADIC if p.kind is VARIADIC else p.default) for p in parameters[: len(expected)]]
    assert ours == expected, f"{method}: {parameters}"
    extra = parameters[len(expected) :]
    assert all(p.default is not EMPTY for p in extra), (
        f"{method}: herd's own parameters {extra} need defaults, or a driver's call would lack them"
    )


# -- the API's behaviour, on an in-memory machine (tests/unit/inmemory.py) ----------------------------


def test_execute_returns_the_status_and_output_as_the_nixos_driver_does(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.on("cat /etc/hostname", Reply(stdout="server\n"))
    memory.on("false", Reply(1, stderr="no\n"))
    memory.on("hang", Reply(seconds=30))
    assert server.execute("cat /etc/hostname") == (0, "server\n")
    assert server.execute("false") == (1, "")
    assert server.execute("false", check_return=False) == (-1, "")
    assert server.execute("hang", timeout=0.05) == (124, "")  # coreutils' `timeout` status


def test_execute_without_waiting_starts_the_command_in_the_background(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    assert server.execute("systemctl start web.service", check_output=False) == (-2, "")
    assert memory.commands == ["(\nsystemctl start web.service\n) >/dev/null 2>&1 &"]
    assert memory.units["web.service"].active == "active"
    with pytest.raises(ArgumentError, match="stdin cannot reach a command run with check_output=False"):
        server.execute("cat", check_output=False, stdin="data")


def test_a_machine_boots_on_its_first_command_once(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.on("true", Reply())
    assert not server.is_up()
    server.succeed("true")
    server.succeed("true")
    assert server.is_up() and memory.boots == 1


def test_succeed_joins_the_outputs_and_fails_with_the_end_of_standard_error(
    make_machine: MakeMachine,
) -> None:
    server, memory = make_machine()
    memory.on("echo a", Reply(stdout="a\n"))
    memory.on("echo b", Reply(stdout="b\n"))
    memory.on("make", Reply(2, stdout="partial", stderr="".join(f"line {n}\n" for n in range(1, 13))))
    assert server.succeed("echo a", "echo b") == "a\nb\n"
    with pytest.raises(CommandFailed) as failed:
        server.succeed("make")
    last_ten = "\n".join(f"    line {n}" for n in range(3, 13))
    assert str(failed.value) == (
        f"server: command `make` failed (exit status 2); its standard error ends with:\n{last_ten}"
    )
    assert (failed.value.status, failed.value.output) == (2, "partial")


def test_fail_expects_failure_and_takes_a_timed_out_command_as_failed(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.on("curl -sf http://localhost:8080", Reply(7, stdout="nothing"))
    memory.on("true", Reply())
    memory.on("hang", Reply(seconds=30))
    assert server.fail("curl -sf http://localhost:8080") == "nothing"
    with pytest.raises(CommandFailed, match=r"^server: command `true` unexpectedly succeeded$"):
        server.fail("true")
    server.fail("hang", timeout=0.05)
    with pytest.raises(WaitTimeout, match=r"^server: command `hang` did not finish within 0.05 s$"):
        server.succeed("hang", timeout=0.05)


def test_arguments_are_checked_before_the_first_command_runs(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    with pytest.raises(ArgumentError, match="holds a NUL byte"):
        server.succeed("true", "echo \0")
    with pytest.raises(ArgumentError, match="server: timeout: "):
        server.succeed("true", timeout=float("nan"))
    assert memory.commands == [] and memory.boots == 0


def test_succeed_with_input_gives_the_command_its_standard_input(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    server.succeed_with_input("cat > /etc/motd", "hello\n")
    assert memory.files["/etc/motd"] == b"hello\n"
    assert server.succeed("cat /etc/motd") == "hello\n"


def test_sleep_runs_in_the_machine(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    started = time.monotonic()
    server.sleep(0.05)
    assert memory.commands == ["sleep 0.05"] and time.monotonic() - started >= 0.05


def test_start_shutdown_and_crash(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    server.start()
    server.start()  # it runs already
    server.shutdown()
    server.shutdown()  # it is down already
    server.start()
    server.crash()
    assert memory.boots == 2 and memory.stops == [StopMode.CLEAN, StopMode.CRASH] and not server.is_up()


def test_a_capability_is_checked_before_the_machine_is_touched(make_machine: MakeMachine) -> None:
    server, memory = make_machine(others={Capability.REBOOT: ["vm", "other-vm"]})
    with pytest.raises(
        CapabilityError,
        match=r"^server.start\(allow_reboot=True\) needs the 'reboot' capability, which backend 'memory' "
        r"\(container\) does not have; backends that can: vm, other-vm$",
    ):
        server.start(allow_reboot=True)
    for call in (
        lambda: server.send_chars("x"),
        lambda: server.connect("wifi"),
        lambda: server.get_tty_text(1),
    ):
        with pytest.raises(CapabilityError, match="no installed backend can"):
            call()
    assert memory.boots == 0


def test_reboot_is_logged_under_the_machine(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.REBOOT)
    server.reboot()
    memory.log.close()
    assert memory.boots == 2 and "server: rebooted" in (memory.output_dir / "log.txt").read_text()


def test_systemctl_and_unit_properties(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    assert server.systemctl("start nginx.service") == (0, "")
    assert server.get_unit_info("nginx.service")["ActiveState"] == "active"
    assert server.get_unit_property("nginx.service", "LoadState") == "loaded"
    server.require_unit_state("nginx.service")
    server.stop_job("nginx.service")
    with pytest.raises(CommandFailed, match=r"unit 'nginx.service' is 'inactive', expected 'active'"):
        server.require_unit_state("nginx.service", "active")
    server.start_job("wireplumber.service", user="alice")
    assert memory.user_units["alice"]["wireplumber.service"].active == "active"
    assert memory.commands[-1] == (
        "su -l alice --shell /bin/sh -c 'XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user start "
        "wireplumber.service'"
    )
    memory.on("systemctl --no-pager show 'x y.service'", Reply(1, stderr="Invalid unit name"))
    with pytest.raises(CommandFailed, match=r"cannot read the properties of unit 'x y\.service'"):
        server.get_unit_info("x y.service")


def test_typing_and_keys(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.CONSOLE, Capability.KEYBOARD)
    server.send_chars("root\n", delay=0.001)
    server.send_chars("ls\n", delay=None)
    server.send_console("exit\n")
    server.send_key("ctrl-alt-delete", delay=None)
    server.send_key("ret", delay=None, log=False)
    assert memory.typed == ["r", "o", "o", "t", "\n", "ls\n", "exit\n"]
    assert memory.pressed == [["ctrl", "alt", "delete"], ["ret"]]
    memory.log.close()
    log = (memory.output_dir / "log.txt").read_text()
    assert "server: sending key 'ctrl-alt-delete'" in log and "'ret'" not in log


def test_screenshot_lands_in_the_output_directory_unless_given_a_path(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    server, memory = make_machine(Capability.SCREENSHOT)
    assert server.screenshot("login") == memory.output_dir / "login.png"
    elsewhere = tmp_path / "elsewhere" / "login.ppm"
    assert server.screenshot(str(elsewhere)) == elsewhere
    assert (memory.output_dir / "login.png").read_bytes().startswith(b"\x89PNG") and elsewhere.exists()


def test_the_console_since_the_last_boot(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.REBOOT)
    server.start()
    memory.console += "Welcome\n"
    assert server.get_console_log() == "boot 1\nWelcome\n"
    server.reboot()
    assert server.get_console_log() == "boot 2\n"


def test_monitor_commands_answer_and_go_to_the_log_only(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.MONITOR)
    memory.monitor["info status"] = "VM status: running\r\n"
    assert server.send_monitor_command("info status") == "VM status: running\r\n"
    memory.log.close()
    assert "server: monitor: info status" in (memory.output_dir / "log.txt").read_text()


def test_network_operations_reach_the_machines_networks(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.HOTPLUG)
    server.block()
    server.unblock("default")
    server.impair(delay=100, loss=1)
    server.impair("default", rate="2mbit")
    server.unimpair()
    server.forward_port()
    server.forward_port(2222, 22, "default")
    assert memory.blocked == {None: True, "default": False}
    assert memory.impairments == {"default": {"delay": 0, "jitter": 0, "loss": 0, "rate": "2mbit"}}
    assert memory.forwards == {8080: (80, None), 2222: (22, "default")}
    server.connect("wifi")
    server.disconnect("default")
    assert memory.networks == {"wifi"}
    with pytest.raises(HerdError, match="on network 'wifi' already"):
        server.connect("wifi")


@pytest.mark.parametrize(
    ("host_port", "guest_port", "wrong"),
    [
        (-1, 80, "host_port"),
        (65536, 80, "host_port"),
        ("8080", 80, "host_port"),
        (8080, 0, "guest_port"),
        (True, 80, "host_port"),
    ],
)
def test_forward_port_takes_port_numbers_and_0_for_a_free_host_port(
    make_machine: MakeMachine, host_port: object, guest_port: object, wrong: str
) -> None:
    server, memory = make_machine()
    with pytest.raises(ArgumentError, match=f"forward_port: {wrong}: expected a port number"):
        server.forward_port(host_port, guest_port)  # type: ignore[arg-type]
    assert memory.forwards == {}


def test_log_and_nested_write_under_the_machines_name(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    server.log("breaking the network")
    with server.nested("filling the database", {"rows": "3"}):
        server.log("inside")
    memory.log.close()
    lines = [line.split("] ", 1)[1] for line in (memory.output_dir / "log.txt").read_text().splitlines()]
    assert lines[0] == "server: breaking the network"
    assert lines[1] == "server: filling the database rows=3"
    assert lines[2] == "  server: inside"
    assert lines[3].startswith("done: server: filling the database rows=3 (")


def test_console_interact_types_the_terminals_input_and_prints_the_console_until_its_end(
    make_machine: MakeMachine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server, memory = make_machine(Capability.CONSOLE)

    def type_and_echo(chars: str) -> None:  # a console that echoes what is typed on it
        memory.typed.append(chars)
        memory.console += f"echo: {chars}"

    monkeypatch.setattr(memory, "send_chars", type_and_echo)
    read_end, write_end = os.pipe()
    os.write(write_end, "root\nünï\n".encode())
    os.close(write_end)  # then the end of the input: Ctrl-D
    with open(read_end) as terminal:
        monkeypatch.setattr(sys, "stdin", terminal)
        server.console_interact()
    assert memory.typed == ["root\nünï\n"]
    assert capsys.readouterr().out == "echo: root\nünï\n"  # what the console printed since, not before
    memory.log.close()
    assert "server: console closed" in (memory.output_dir / "log.txt").read_text()
