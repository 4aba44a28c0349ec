"""Machine's methods take the NixOS test driver's parameters, in its order, with its defaults, so
that a script written for the driver calls them unchanged."""

from __future__ import annotations

import inspect

import pytest

from herd.machine import Machine

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
