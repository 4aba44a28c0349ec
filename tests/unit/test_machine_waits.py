"""Every wait of the Machine API, on an in-memory machine: it returns soon after its condition holds,
fails at once where the NixOS test driver does, and times out when it never holds."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from herd import ArgumentError, CapabilityError, CommandFailed, WaitTimeout
from herd.hooks.types import Capability, StopMode
from herd.run.waiting import LONGEST_POLL

from .conftest import MakeMachine
from .inmemory import Reply, Unit

SOON = 0.05  # seconds until the condition of a wait holds
# A wait returns within this of its condition holding: its polls are at most 50 ms apart (the NixOS
# test driver's are a second apart); the rest is room for a loaded host.
PROMPT = 0.5


def timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_wait_until_succeeds_returns_the_output_soon_after_the_command_succeeds(
    make_machine: MakeMachine,
) -> None:
    server, memory = make_machine()
    memory.on("curl -sf http://server", Reply(7))
    memory.after(SOON, lambda: memory.on("curl -sf http://server", Reply(stdout="hello")))
    started = time.monotonic()
    assert server.wait_until_succeeds("curl -sf http://server", timeout=10) == "hello"
    assert SOON <= time.monotonic() - started < SOON + PROMPT
    assert memory.commands.count("curl -sf http://server") > 2  # it polled


def test_wait_until_fails_returns_the_output_of_the_failing_run(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.on("pgrep -x sleep", Reply(stdout="42\n"))
    memory.after(SOON, lambda: memory.on("pgrep -x sleep", Reply(1, stdout="gone\n")))
    assert server.wait_until_fails("pgrep -x sleep", timeout=10) == "gone\n"


def test_a_wait_that_never_holds_times_out_after_its_timeout(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.on("false", Reply(1))
    memory.on("true", Reply(0))
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"^server: timed out after 0.2 s waiting for `false` to succeed$"):
        server.wait_until_succeeds("false", timeout=0.2)
    # its last try is the last one that starts before the deadline
    assert 0.2 - LONGEST_POLL <= time.monotonic() - started < 0.2 + PROMPT
    with pytest.raises(WaitTimeout, match=r"^server: timed out after 0.2 s waiting for `true` to fail$"):
        server.wait_until_fails("true", timeout=0.2)


def test_a_long_wait_still_polls_every_50_ms_at_most(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.after(1.2, lambda: memory.files.update({"/run/ready": b""}))
    server.wait_for_file("/run/ready", timeout=10)
    gaps = [later - earlier for earlier, later in zip(memory.started, memory.started[1:], strict=False)]
    assert max(gaps) < 0.25  # 50 ms between polls at most, and room for a loaded host


def test_a_slow_command_gets_what_is_left_of_its_wait(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.on("slow-check", Reply(1, seconds=0.8))
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="waiting for `slow-check` to succeed"):
        server.wait_until_succeeds("slow-check", timeout=1.0)
    # the second run is cut off at the wait's deadline, not after its own 0.8 s
    assert time.monotonic() - started < 1.3


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0])
def test_a_wait_refuses_a_timeout_it_cannot_keep_before_running_anything(
    make_machine: MakeMachine, timeout: float
) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    for wait in (
        lambda: server.wait_until_succeeds("true", timeout=timeout),
        lambda: server.wait_for_file("/run/ready", timeout=timeout),
        lambda: server.wait_for_open_port(80, timeout=timeout),
        lambda: server.wait_for_unit("nginx", timeout=timeout),
        lambda: server.wait_for_console_text("login:", timeout=timeout),
        lambda: server.wait_for_shutdown(timeout=timeout),
    ):
        with pytest.raises(ArgumentError, match="server: timeout: "):
            wait()
    assert memory.commands == [] and memory.boots == 0


def test_wait_for_file_waits_until_the_file_exists(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    path = "/run/my service/ready"  # quoted for the shell, as any path
    memory.after(SOON, lambda: memory.files.update({path: b""}))
    assert SOON <= timed(lambda: server.wait_for_file(path, timeout=10)) < SOON + PROMPT
    with pytest.raises(
        WaitTimeout, match=r"^server: timed out after 0.1 s waiting for file /run/other to exist$"
    ):
        server.wait_for_file("/run/other", timeout=0.1)


def test_wait_for_open_and_closed_port(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.after(SOON, lambda: memory.ports.add(("localhost", 80)))
    assert SOON <= timed(lambda: server.wait_for_open_port(80, timeout=10)) < SOON + PROMPT
    with pytest.raises(WaitTimeout):
        server.wait_for_open_port(80, addr="10.0.0.2", timeout=0.1)  # open on localhost only
    memory.after(SOON, lambda: memory.ports.discard(("localhost", 80)))
    server.wait_for_closed_port(80, timeout=10)
    assert ("localhost", 80) not in memory.ports


def test_wait_for_open_unix_socket_tells_stream_from_datagram(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.after(SOON, lambda: memory.sockets.add(("/run/log socket", "SOCK_DGRAM")))
    server.wait_for_open_unix_socket("/run/log socket", is_datagram=True, timeout=10)
    with pytest.raises(WaitTimeout):
        server.wait_for_open_unix_socket("/run/log socket", timeout=0.1)


def test_wait_for_unit_returns_once_the_unit_is_active(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    memory.units["nginx.service"] = Unit("activating")
    memory.after(SOON, lambda: setattr(memory.units["nginx.service"], "active", "active"))
    assert SOON <= timed(lambda: server.wait_for_unit("nginx", timeout=10)) < SOON + PROMPT


def test_wait_for_unit_waits_for_an_inactive_unit_while_jobs_are_pending(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    memory.units["web.socket"] = Unit("inactive")
    memory.jobs.append("1 web.socket start waiting")
    memory.after(SOON, lambda: setattr(memory.units["web.socket"], "active", "active"))
    server.wait_for_unit("web.socket", timeout=10)


@pytest.mark.parametrize(
    ("unit", "message"),
    [
        (Unit("failed"), "unit 'nginx.service' reached state 'failed'"),
        (Unit(load="not-found"), "unit 'nginx.service' does not exist"),
        (Unit("inactive"), "unit 'nginx.service' is inactive and there are no pending jobs"),
    ],
)
def test_wait_for_unit_fails_at_once_when_the_unit_cannot_become_active(
    make_machine: MakeMachine, unit: Unit, message: str
) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    memory.units["nginx.service"] = unit
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=f"^server: {message}$"):
        server.wait_for_unit("nginx", timeout=10)
    assert time.monotonic() - started < PROMPT


def test_wait_for_unit_times_out_while_the_unit_stays_activating(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    memory.units["slow.service"] = Unit("activating")
    with pytest.raises(WaitTimeout, match=r"^server: timed out after 0.2 s waiting for unit 'slow.service'"):
        server.wait_for_unit("slow", timeout=0.2)


def test_wait_for_unit_of_a_user_asks_the_users_manager(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.SYSTEMD)
    memory.user_units["alice"] = {"pipewire.service": Unit("activating")}
    memory.after(SOON, lambda: setattr(memory.user_units["alice"]["pipewire.service"], "active", "active"))
    server.wait_for_unit("pipewire", user="alice", timeout=10)
    assert all(command.startswith("su -l alice --shell /bin/sh -c ") for command in memory.commands)


def test_wait_for_unit_needs_systemd_and_says_where_it_is(make_machine: MakeMachine) -> None:
    server, memory = make_machine(others={Capability.SYSTEMD: ["with-systemd"]})
    with pytest.raises(
        CapabilityError,
        match=r"server.wait_for_unit\(\) needs the 'systemd' capability, which backend 'memory' "
        r"\(container\) does not have; backends that can: with-systemd",
    ):
        server.wait_for_unit("nginx")
    assert memory.commands == []


def test_wait_for_console_text_boots_the_machine_and_returns_the_match(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    memory.after(SOON, lambda: setattr(memory, "console", memory.console + "Debian login: "))
    assert server.wait_for_console_text(r"\w+ login:", timeout=10) == "Debian login:"
    assert memory.boots == 1
    with pytest.raises(WaitTimeout, match=r"waiting for console text matching 'panic'"):
        server.wait_for_console_text("panic", timeout=0.1)


def test_wait_for_shutdown_releases_the_machine_once_it_powered_off(make_machine: MakeMachine) -> None:
    server, memory = make_machine()
    server.start()
    assert server.execute("systemctl poweroff --no-block", check_output=False) == (-2, "")
    server.wait_for_shutdown(timeout=10)
    assert memory.stops == [StopMode.CLEAN] and not server.is_up()


def test_wait_for_shutdown_waits_for_the_power_off_and_times_out_without_it(
    make_machine: MakeMachine,
) -> None:
    server, memory = make_machine()
    server.start()
    memory.after(SOON, lambda: setattr(memory, "powered_off", True))
    assert SOON <= timed(lambda: server.wait_for_shutdown(timeout=10)) < SOON + PROMPT
    server.start()
    with pytest.raises(WaitTimeout, match=r"^server: timed out after 0.2 s waiting for it to power off$"):
        server.wait_for_shutdown(timeout=0.2)
    assert server.is_up() and memory.stops == [StopMode.CLEAN]


def test_wait_for_shutdown_of_a_machine_that_is_not_running_returns_at_once(
    make_machine: MakeMachine,
) -> None:
    server, memory = make_machine()
    server.wait_for_shutdown(timeout=10)
    assert memory.boots == 0 and memory.stops == []


def test_wait_until_tty_matches_reads_the_virtual_terminal(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.KERNEL)
    memory.ttys[2] = "Debian GNU/Linux\n"
    memory.after(SOON, lambda: memory.ttys.update({2: "Debian GNU/Linux\nhost login: "}))
    server.wait_until_tty_matches(2, "login: $", timeout=10)
    with pytest.raises(WaitTimeout, match=r"waiting for tty2 to match 'Password'"):
        server.wait_until_tty_matches("2", "Password", timeout=0.1)
    with pytest.raises(ArgumentError, match="tty 64 is not the number of a virtual terminal"):
        server.wait_until_tty_matches(64, "x", timeout=1)


def test_wait_for_qmp_event_returns_the_first_event_the_filter_accepts(make_machine: MakeMachine) -> None:
    server, memory = make_machine(Capability.MONITOR)
    memory.after(SOON, lambda: memory.qmp.extend([{"event": "RESUME"}, {"event": "STOP", "data": {}}]))
    assert server.wait_for_qmp_event(lambda event: event["event"] == "STOP", timeout=10) == {
        "event": "STOP",
        "data": {},
    }
    memory.qmp.append({"event": "RESUME"})  # refused, and dropped
    with pytest.raises(WaitTimeout, match=r"^server: timed out after 0.1 s waiting for a QMP event$"):
        server.wait_for_qmp_event(lambda event: event["event"] == "STOP", timeout=0.1)
    assert memory.qmp == []
