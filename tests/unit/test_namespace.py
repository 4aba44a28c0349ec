"""The names a script sees, polling conditions and the console echo, without machines."""

from __future__ import annotations

import time
import types
import unittest

import pytest

import herd
from herd import HerdError, PollingConditionFailed, Test, WaitTimeout
from herd.declare.spec import DRIVER_NAMES, script_names
from herd.hooks.manager import Plugins
from herd.hooks.types import BackendInfo, Kind, NetworkProviderInfo
from herd.linux.console import ConsoleEcho, read_since, size_of
from herd.network.plan import plan
from herd.plugin import hookimpl
from herd.report.log import RunLog
from herd.run.driver import Driver, RunOptions
from herd.run.machine import Machine
from herd.run.polling import PollingCondition, check_all

from .conftest import place


def plugins_with_a_container_backend() -> Plugins:
    """Plugins holding one backend, `fake`, that boots nothing, and the network provider `bridge`,
    which makes nothing (these tests start no run)."""
    plugin = types.ModuleType("fake_backend")

    @hookimpl
    def herd_register_backends(register):  # type: ignore[no-untyped-def]
        register(BackendInfo(name="fake", kind=Kind.CONTAINER, capabilities=frozenset(), description="none"))

    @hookimpl
    def herd_register_network_providers(register):  # type: ignore[no-untyped-def]
        register(NetworkProviderInfo(name="bridge", description="none"))

    plugin.herd_register_backends = herd_register_backends  # type: ignore[attr-defined]
    plugin.herd_register_network_providers = herd_register_network_providers  # type: ignore[attr-defined]
    plugins = Plugins()
    plugins.register(plugin, "fake")
    return plugins


def planned_driver(machines: dict[str, dict[str, object]]) -> Driver:
    """A driver whose run is planned (its networks), as the script finds it, and not started."""
    test = Test(name="names", machines=machines, script="pass")
    driver = Driver(test.spec, test.source, RunOptions(terminal=None), plugins_with_a_container_backend())
    driver._network_plan = plan(driver.spec, place)
    return driver


def test_the_namespace_holds_exactly_the_names_the_checker_knows() -> None:
    driver = planned_driver({"web-1": {"backend": "fake"}})
    namespace = driver.namespace()
    assert set(namespace) == script_names({"web_1"})
    assert namespace["machine"] is namespace["web_1"] is driver.machines[0]
    assert isinstance(namespace["t"], unittest.TestCase)
    assert namespace["os"].sep == "/"
    assert [network.name for network in namespace["vlans"]] == ["default"]
    assert namespace["BaseMachine"] is Machine
    assert driver.out_dir == driver.output_dir


def test_machine_is_only_given_in_a_test_of_one_machine() -> None:
    namespace = planned_driver({"a": {"backend": "fake"}, "b": {"backend": "fake"}}).namespace()
    assert "machine" not in namespace and {"a", "b"} <= set(namespace)


@pytest.mark.parametrize("name", ["t", "os", "vlans", "join-all", "serial-stdout-on"])
def test_a_machine_cannot_take_a_driver_name(name: str) -> None:
    assert name.replace("-", "_") in DRIVER_NAMES
    with pytest.raises(
        herd.SpecError, match=f"machine name '{name}' is taken by the test script's own names"
    ):
        Test(name="x", machines={name: {}}, script="pass")


def test_create_machine_says_machines_are_declared() -> None:
    with pytest.raises(HerdError, match=r"create_machine\(\) is not available: herd machines are declared"):
        planned_driver({"a": {"backend": "fake"}}).create_machine("run-vm")


def condition(function: object, active: list[PollingCondition], **options: object) -> PollingCondition:
    return PollingCondition(function, active, RunLog(None, None), **options)  # type: ignore[arg-type]


def test_an_entered_condition_is_checked_when_due_and_fails_with_its_reason() -> None:
    active: list[PollingCondition] = []
    state = {"up": True, "calls": 0}

    def service_up() -> None:
        """the service is up"""
        state["calls"] += 1
        if not state["up"]:
            raise RuntimeError("it went down")

    check_all(active)
    assert state["calls"] == 0  # not entered: never checked
    with condition(service_up, active, seconds_interval=0.05):
        check_all(active)
        check_all(active)  # within its interval: not checked again
        assert state["calls"] == 1
        state["up"] = False
        time.sleep(0.06)
        with pytest.raises(
            PollingConditionFailed, match="'the service is up' failed: RuntimeError: it went down"
        ):
            check_all(active)
    assert active == []


def test_a_condition_that_returns_false_fails_and_none_holds() -> None:
    active: list[PollingCondition] = []
    holds, fails = condition(lambda: None, active), condition(lambda: False, active, description="flag")
    with holds, fails, pytest.raises(PollingConditionFailed, match="'flag' failed: it returned False"):
        check_all(active)


def test_a_condition_is_not_checked_again_by_its_own_commands() -> None:
    active: list[PollingCondition] = []

    def uses_commands() -> bool:
        check_all(active)  # what the driver does before each of the condition's own commands
        return True

    with condition(uses_commands, active, seconds_interval=0):
        check_all(active)


def test_wait_returns_once_the_condition_holds_and_times_out_otherwise() -> None:
    ready_at = time.monotonic() + 0.1
    condition(lambda: time.monotonic() >= ready_at, []).wait(timeout=5)
    with pytest.raises(WaitTimeout, match="'never' to hold"):
        condition(lambda: False, [], description="never").wait(timeout=0.1)


def test_polling_condition_works_as_decorator_with_and_without_arguments() -> None:
    driver = planned_driver({"a": {"backend": "fake"}})

    @driver.polling_condition
    def plain() -> None:
        """plain's description"""

    @driver.polling_condition(seconds_interval=7, description="given")
    def with_arguments() -> None:
        pass

    assert (plain.description, plain.seconds_interval) == ("plain's description", 2.0)
    assert (with_arguments.description, with_arguments.seconds_interval) == ("given", 7.0)
    with plain, with_arguments:
        assert driver.polling_conditions == [plain, with_arguments]
    with pytest.raises(herd.ArgumentError, match="seconds_interval"):
        driver.polling_condition(lambda: True, seconds_interval=float("nan"))


def test_the_echo_shows_complete_new_lines_and_starts_over_after_a_boot() -> None:
    consoles = {"a": "booting\n"}
    shown: list[tuple[str, str]] = []
    echo = ConsoleEcho(["a"], consoles.__getitem__, lambda name, line: shown.append((name, line)))
    echo.switch(True)  # what was there before is not shown
    consoles["a"] += "ready\npartial"
    echo.show_new_lines()
    assert shown == [("a", "ready")]
    consoles["a"] = "second boot\n"
    echo.show_new_lines()
    echo.stop()
    assert shown == [("a", "ready"), ("a", "second boot")]


def test_a_console_is_read_from_where_its_machine_last_booted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "console.log"
    assert size_of(log) == 0 and read_since(log, 0) == ""  # before the first boot wrote it
    log.write_bytes(b"first boot\n")
    start = size_of(log)
    with log.open("ab") as console:
        console.write(b"second boot \xff\n")
    assert read_since(log, start) == "second boot \ufffd\n"
