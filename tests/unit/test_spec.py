"""Validation of test declarations: every problem named with its test, machine and field."""

from __future__ import annotations

import pytest

from herd import SpecError, Test
from herd.spec import FileSpec, parse_size, parse_test

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


def test_resource_limits_default_to_the_documented_values() -> None:
    [machine] = parse_test("t", {"m": {}}, SCRIPT).machines
    assert (machine.memory, machine.cpus, machine.pids, machine.disk) == (1024, 2.0, 4096, 2048)


@pytest.mark.parametrize(
    ("declared", "mib"),
    [(512, 512), ("512M", 512), ("512m", 512), ("2G", 2048), ("2GiB", 2048), ("2GB", 2048),
     ("1536MiB", 1536), ("1T", 1 << 20), ("16384K", 16), (" 64M ", 64)],
)  # fmt: skip
def test_sizes_are_mib_or_an_integer_with_a_binary_unit(declared: object, mib: int) -> None:
    assert parse_size(declared) == mib
    [machine] = parse_test("t", {"m": {"memory": declared, "disk": declared}}, SCRIPT).machines
    assert machine.memory == mib and machine.disk == mib


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (True, "expected MiB as an integer, or a string of an integer and a unit"),
        (512.0, "expected MiB as an integer"),
        ("1.5G", "expected MiB as an integer"),
        ("lots", "got 'lots'"),
        ("512", "got '512'"),
        ("512X", "got '512X'"),
        ("", "got ''"),
        ("1536K", "'1536K' is not a whole number of MiB"),
        (0, "expected at least 16 MiB, got 0"),
        (-512, "expected at least 16 MiB, got -512"),
        ("8M", "expected at least 16 MiB, got '8M'"),
    ],
)
@pytest.mark.parametrize("field_name", ["memory", "disk"])
def test_bad_sizes_name_the_field(field_name: str, declared: object, expected: str) -> None:
    [message] = problems({"m": {field_name: declared}})
    assert message.startswith(f"test 't', machine 'm', field '{field_name}': ")
    assert expected in message


def test_cpus_may_be_a_fraction() -> None:
    spec = parse_test("t", {"half": {"cpus": 0.5}, "four": {"cpus": 4}}, SCRIPT)
    assert [m.cpus for m in spec.machines] == [0.5, 4.0]
    assert isinstance(spec.machines[1].cpus, float)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (True, "expected a number of CPUs such as 2 or 0.5, got True"),
        ("2", "expected a number of CPUs such as 2 or 0.5, got '2'"),
        (float("nan"), "expected a number of CPUs such as 2 or 0.5, got nan"),
        (float("inf"), "expected a number of CPUs such as 2 or 0.5, got inf"),
        (0, "expected a number of CPUs from 0.01 to 1024, got 0"),
        (-1, "expected a number of CPUs from 0.01 to 1024, got -1"),
        (0.001, "expected a number of CPUs from 0.01 to 1024, got 0.001"),
        (1025, "expected a number of CPUs from 0.01 to 1024, got 1025"),
    ],
)
def test_bad_cpus_name_the_field(declared: object, expected: str) -> None:
    assert problems({"m": {"cpus": declared}}) == [f"test 't', machine 'm', field 'cpus': {expected}"]


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (True, "expected an integer number of processes and threads, got True"),
        (128.0, "expected an integer number of processes and threads, got 128.0"),
        ("128", "expected an integer number of processes and threads, got '128'"),
        (0, "expected from 64 to 4194304 processes and threads, got 0"),
        (-5, "expected from 64 to 4194304 processes and threads, got -5"),
        (63, "expected from 64 to 4194304 processes and threads, got 63"),
        (1 << 23, "expected from 64 to 4194304 processes and threads, got 8388608"),
    ],
)
def test_bad_pids_name_the_field(declared: object, expected: str) -> None:
    assert problems({"m": {"pids": declared}}) == [f"test 't', machine 'm', field 'pids': {expected}"]


def test_the_smallest_limits_are_accepted() -> None:
    [machine] = parse_test(
        "t", {"m": {"memory": "16M", "cpus": 0.01, "pids": 64, "disk": 16}}, SCRIPT
    ).machines
    assert (machine.memory, machine.cpus, machine.pids, machine.disk) == (16, 0.01, 64, 16)
