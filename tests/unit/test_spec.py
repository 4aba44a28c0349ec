"""Validation of test declarations: every problem named with its test, machine and field."""

from __future__ import annotations

import os

import pytest

from herd import SpecError, Test
from herd.declare.spec import FileSpec, parse_size, parse_test

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
    assert any("machine 'm2', field 'image': 'alpine' is not an image" in p for p in found)


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


def files_problems(files: dict[str, object]) -> list[str]:
    return problems({"m": {"files": files}})


def test_paths_are_normalised_and_two_spellings_of_one_path_conflict() -> None:
    spec = parse_test("t", {"m": {"files": {"/etc//app/./conf": "a", "/srv/x": "b"}}}, SCRIPT)
    assert set(spec.machines[0].files) == {"/etc/app/conf", "/srv/x"}
    assert files_problems({"/etc/x": "a", "/etc//x": "b", "/etc/./x": "c"}) == [
        "test 't', machine 'm', field 'files': '/etc//x' is the same path as '/etc/x', also declared",
        "test 't', machine 'm', field 'files': '/etc/./x' is the same path as '/etc/x', also declared",
    ]


@pytest.mark.parametrize("path", ["/etc/../x", "/etc/x/..", "/var/lib/../../etc/x"])
def test_dot_dot_components_are_refused(path: str) -> None:
    assert files_problems({path: "a"}) == [
        f"test 't', machine 'm', field 'files': {path!r} has a '..' component: give the path without it"
    ]


def test_a_nul_byte_in_a_path_is_refused() -> None:
    assert files_problems({"/etc/a\0b": "x"}) == [
        "test 't', machine 'm', field 'files': '/etc/a\\x00b' holds a NUL byte"
    ]


def test_a_declared_path_below_another_names_both() -> None:
    found = files_problems({"/etc/app": "a", "/etc/app/conf.d/x": "b", "/etc//app/y": "c"})
    assert found == [
        "test 't', machine 'm', field 'files': '/etc/app/conf.d/x' is below '/etc/app', also declared: "
        "a path cannot be both a file and a directory",
        "test 't', machine 'm', field 'files': '/etc//app/y' is below '/etc/app', also declared: "
        "a path cannot be both a file and a directory",
    ]


@pytest.mark.parametrize(
    ("path", "below"),
    [
        ("/etc/systemd/system/default.target/x", "/etc/systemd/system/default.target"),
        ("/etc/hosts/x", "/etc/hosts"),
        ("/etc/machine-id/a/b", "/etc/machine-id"),
    ],
)
def test_nothing_goes_below_a_file_herd_writes(path: str, below: str) -> None:
    assert files_problems({path: "a"}) == [
        f"test 't', machine 'm', field 'files': {path!r} is below {below!r}, a file herd writes itself"
    ]


@pytest.mark.parametrize(
    "path", ["/etc", "/etc/systemd", "/etc/systemd/system", "/var", "/var/log/journal", "/var/tmp"]
)
def test_no_file_replaces_a_directory_herd_makes(path: str) -> None:
    assert files_problems({path: "a"}) == [
        f"test 't', machine 'm', field 'files': {path!r} is a directory herd makes in every machine"
    ]


def test_the_host_tree_decides_where_a_file_fits() -> None:
    """The machine's /etc and /var are views of the host's: its files, directories and links."""
    assert files_problems({"/etc/passwd/x": "a"}) == [
        "test 't', machine 'm', field 'files': '/etc/passwd/x' is below '/etc/passwd', which is a file "
        "on the host, not a directory"
    ]
    assert files_problems({"/var/lib": "a"}) == [
        "test 't', machine 'm', field 'files': '/var/lib' is a directory on the host: a file cannot "
        "replace it"
    ]


@pytest.mark.parametrize("link", ["/var/run", "/var/lock"])
def test_no_file_goes_through_a_link_of_the_host(link: str) -> None:
    if not os.path.islink(link):
        pytest.skip(f"{link} is not a link on this host")
    [message] = files_problems({f"{link}/x.pid": "1\n"})
    assert message == (
        f"test 't', machine 'm', field 'files': '{link}/x.pid' is below '{link}', a link on the host "
        f"to {os.readlink(link)!r}: herd would replace the link with a directory; give the path the "
        "link leads to"
    )


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


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("host", "host"),
        ("debian:bookworm", "debian"),
        ("oci:/srv/app.tar", "oci"),
        ({"nixos": "/nix/store/x"}, "nixos"),
    ],
)
def test_an_image_is_host_kind_value_or_a_mapping_of_one_kind(image: object, kind: str) -> None:
    machine = parse_test("t", {"m": {"image": image}}, SCRIPT).machines[0]
    assert machine.image == image and machine.image_kind == kind


@pytest.mark.parametrize(
    "image", ["alpine", "debian:", ":bookworm", "Debian:x", {"a": 1, "b": 2}, {}, 7, None]
)
def test_an_image_of_another_form_is_refused_with_the_forms_it_may_take(image: object) -> None:
    [message] = problems({"m": {"image": image}})
    assert message.startswith(
        f"test 't', machine 'm', field 'image': {image!r} is not an image: expected 'host'"
    )


def test_packages_are_distinct_debian_package_names() -> None:
    machine = parse_test(
        "t", {"m": {"packages": ["redis-server", "libc6", "g++", "python3.11"]}}, SCRIPT
    ).machines[0]
    assert machine.packages == ("redis-server", "libc6", "g++", "python3.11")
    found = problems({"m": {"packages": ["Redis", "a", "-x", "curl", "curl", 3]}, "n": {"packages": "curl"}})
    assert [p.split(": ", 1)[1] for p in found] == [
        "'Redis' is not a Debian package name (lower-case letters, digits, '+', '-' and '.', at least two, "
        "starting with a letter or digit)",
        "'a' is not a Debian package name (lower-case letters, digits, '+', '-' and '.', at least two, "
        "starting with a letter or digit)",
        "'-x' is not a Debian package name (lower-case letters, digits, '+', '-' and '.', at least two, "
        "starting with a letter or digit)",
        "'curl' is listed twice",
        "3 is not a Debian package name (lower-case letters, digits, '+', '-' and '.', at least two, "
        "starting with a letter or digit)",
        "expected a list of Debian package names, got str",
    ]
    assert all(p.startswith("test 't', machine '") and "field 'packages'" in p for p in found)
