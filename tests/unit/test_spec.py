"""Validation of test declarations: every problem named with its test, machine and field."""

from __future__ import annotations

import pytest

from herd import SpecError, Test
from herd.spec import FileSpec, parse_test

SCRIPT = "start_all()"


def problems(
    machines: object, script: object = SCRIPT, name: object = "t", timeout: object = None
) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_test(name, machines, script, timeout)
    return caught.value.problems


def test_a_valid_declaration_becomes_typed_specs() -> None:
    spec = parse_test(
        "web",
        {
            "server": {
                "backend": "nspawn",
                "services": ["nginx", "cron.timer"],
                "units": {"hello.service": "[Service]\nExecStart=/bin/true\n"},
                "files": {"/etc/motd": "hi\n", "/srv/blob": {"content": b"\0\1", "mode": 0o600}},
                "boot_timeout": 30,
                "options": {"extra_args": []},
            },
            "client-1": {},
        },
        SCRIPT,
        timeout=120,
    )
    server, client = spec.machines
    assert server.services == ("nginx.service", "cron.timer")
    assert server.units_to_start() == ("nginx.service", "cron.timer", "hello.service")
    assert server.files["/srv/blob"] == FileSpec(b"\0\1", 0o600)
    assert server.boot_timeout == 30.0
    assert client.backend is None and client.script_name == "client_1"
    assert spec.timeout == 120.0
    assert spec.with_default_backend("x").machine("client-1").backend == "x"
    assert spec.with_default_backend("x").machine("server").backend == "nspawn"


def test_unknown_field_names_test_machine_field_and_suggests() -> None:
    [message] = problems({"m1": {"servics": ["nginx"]}})
    assert message.startswith("test 't', machine 'm1', field 'servics': unknown field")
    assert "did you mean 'services'?" in message


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"m1": {"services": "nginx", "boot_timeout": -1}, "m2": {"image": "alpine"}})
    assert len(found) == 3
    assert any("machine 'm1', field 'services': expected a list" in p for p in found)
    assert any("machine 'm1', field 'boot_timeout'" in p for p in found)
    assert any("machine 'm2', field 'image': unknown image 'alpine'" in p for p in found)


@pytest.mark.parametrize("name", ["1abc", "has_underscore", "-lead", "trail-", "x" * 64, "", 7])
def test_machine_names_must_be_hostnames(name: object) -> None:
    [message] = problems({name: {}})
    assert "is not a valid hostname" in message


@pytest.mark.parametrize("name", ["driver", "start_all", "machines", "class"])
def test_machine_names_may_not_shadow_script_names(name: str) -> None:
    [message] = problems({"m": {}, name.replace("_", "-"): {}})
    assert "taken by the test script's own names" in message


def test_machine_names_are_hostnames_so_case_does_not_tell_them_apart() -> None:
    [message] = problems({"web-1": {}, "Web-1": {}})
    assert message == "test 't', machine 'Web-1': machine name 'Web-1' is the same hostname as 'web-1'"


def test_bad_types_name_the_field() -> None:
    assert "field 'units'" in problems({"m": {"units": ["a.service"]}})[0]
    assert "is not a unit file name" in problems({"m": {"units": {"nosuffix": "x"}}})[0]
    assert "expected the unit file's text" in problems({"m": {"units": {"a.service": ""}}})[0]
    assert "field 'backend'" in problems({"m": {"backend": "Bad Name"}})[0]
    assert "field 'options'" in problems({"m": {"options": ["x"]}})[0]
    assert "expected a mapping of fields" in problems({"m": "nspawn"})[0]


def test_files_are_checked_before_anything_starts(tmp_path: object) -> None:
    assert "not an absolute file path" in problems({"m": {"files": {"etc/x": "a"}}})[0]
    assert "/usr is shared read-only" in problems({"m": {"files": {"/usr/bin/x": "a"}}})[0]
    assert "fresh at every boot" in problems({"m": {"files": {"/tmp/x": "a"}}})[0]
    assert (
        "exactly one of 'content' and 'source'" in problems({"m": {"files": {"/etc/x": {"mode": 0o600}}}})[0]
    )
    assert (
        "mode must be an integer" in problems({"m": {"files": {"/etc/x": {"content": "", "mode": "644"}}}})[0]
    )
    assert "cannot read source" in problems({"m": {"files": {"/etc/x": {"source": "/nonexistent/file"}}}})[0]


def test_file_source_is_read_from_the_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "conf"
    source.write_bytes(b"key=value\n")
    spec = parse_test(
        "t", {"m": {"files": {"/etc/app.conf": {"source": str(source), "mode": 0o640}}}}, SCRIPT
    )
    assert spec.machines[0].files["/etc/app.conf"] == FileSpec(b"key=value\n", 0o640)


def test_services_are_unit_names_and_listed_once() -> None:
    assert "is not a unit name" in problems({"m": {"services": ["a b"]}})[0]
    assert "listed twice" in problems({"m": {"services": ["nginx", "nginx.service"]}})[0]


def test_script_syntax_errors_are_found_before_anything_starts() -> None:
    [message] = problems({"m": {}}, script="start_all(\n")
    assert message.startswith("test 't': the script has a syntax error on its line")


def test_function_script_parameters_must_name_machines_or_driver_names() -> None:
    def script(m, start_all, subtest) -> None:  # type: ignore[no-untyped-def]
        pass

    parse_test("t", {"m": {}}, script)

    def wrong(n) -> None:  # type: ignore[no-untyped-def]
        pass

    [message] = problems({"m": {}}, script=wrong)
    assert "script parameter 'n' is neither a machine nor a driver name" in message


def test_test_level_problems() -> None:
    assert "non-empty name" in problems({"m": {}}, name="")[0]
    assert "non-empty mapping" in problems({})[0]
    assert "timeout" in problems({"m": {}}, timeout=0)[0]
    assert "expected a string or a function" in problems({"m": {}}, script=3)[0]


def test_herd_test_records_where_it_was_declared() -> None:
    test = Test(name="here", machines={"m": {}}, script=SCRIPT)
    assert test.source.path == __file__
    assert test.name == "here" and "m" in repr(test)


def test_what_herd_writes_itself_cannot_be_declared() -> None:
    for path in ("/etc/hosts", "/etc/systemd/system-generators", "/etc/systemd/system-generators/x"):
        assert "is written by herd itself" in problems({"m": {"files": {path: "x"}}})[0], path
    for unit in ("herd.target", "default.target", "herd-network.service"):
        assert "a unit name herd uses itself" in problems({"m": {"units": {unit: "[Unit]\n"}}})[0], unit


@pytest.mark.parametrize(
    "name", ["/tmp/x", "../../x", "a/b", ".", "..", ".hidden", "a\0b", "tab\there", "line\nbreak", "x" * 129]
)
def test_a_test_name_must_be_one_directory_name(name: str) -> None:
    [message] = problems({"m": {}}, name=name)
    assert message.startswith("test '?': the test name ")
    assert "printable characters without '/', not starting with '.', at most 128 bytes" in message


@pytest.mark.parametrize("name", ["ping", "web server (v2)", "x" * 128, "é" * 64, "a.b-c_d"])
def test_printable_names_without_a_slash_or_a_leading_dot_are_test_names(name: str) -> None:
    assert parse_test(name, {"m": {}}, SCRIPT).name == name


def test_a_name_of_128_characters_may_be_too_many_bytes() -> None:
    [message] = problems({"m": {}}, name="é" * 65)
    assert "is too long" in message


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -float("inf"), 1e12, 604800.5, 10**400, 0])
def test_timeouts_are_finite_positive_and_at_most_a_week(seconds: float) -> None:
    found = problems({"m": {"boot_timeout": seconds}, "n": {}}, timeout=seconds)
    expected = f"expected a positive number of seconds, at most 604800 (one week), got {seconds!r}"
    assert found == [
        f"test 't', machine 'm', field 'boot_timeout': {expected}",
        f"test 't': timeout: {expected}",
    ]


def test_a_week_is_the_longest_timeout() -> None:
    spec = parse_test("t", {"m": {"boot_timeout": 604800}}, SCRIPT, timeout=604800.0)
    assert spec.timeout == spec.machines[0].boot_timeout == 604800.0
