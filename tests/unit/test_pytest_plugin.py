"""herd's pytest plugin, where it needs no machine: what it tells pytest."""

from __future__ import annotations

import pytest


def test_the_marker_description_names_every_argument(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["@pytest.mark.herd(machines, networks=None, timeout=None, requires=()): *"])


def test_a_long_parametrized_test_gets_a_valid_herd_test_name(pytester: pytest.Pytester) -> None:
    from herd.declare.spec import TEST_NAME_MAX_BYTES, test_name_problem
    from herd.testing.pytest_plugin import _test_name

    ids = ["x" * 200, "."]
    source = f"import pytest\n@pytest.mark.parametrize('p', [1, 2], ids={ids!r})\ndef test_p(p): pass\n"
    names = [_test_name(item) for item in pytester.getitems(source)]
    assert names[0] == "test_p-" + "x" * (TEST_NAME_MAX_BYTES - len("test_p-"))
    assert names[1] == "test_p"
    assert all(test_name_problem(name) is None for name in names)


def test_the_backend_and_output_directory_come_from_the_ini_unless_given(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nherd_backend = docker\nherd_output_dir = logs/herd\n")
    pytester.makepyfile(
        """
        from herd.testing.pytest_plugin import backend_setting, output_dir_setting

        def test_settings(pytestconfig):
            print("SETTINGS", backend_setting(pytestconfig), output_dir_setting(pytestconfig))
        """
    )
    from_ini = pytester.runpytest("-s", "-p", "no:cacheprovider")
    from_ini.stdout.fnmatch_lines([f"*SETTINGS docker {pytester.path / 'logs' / 'herd'}"])
    given = pytester.runpytest(
        "-s", "-p", "no:cacheprovider", "--herd-backend", "nspawn", "--herd-output-dir", "/x"
    )
    given.stdout.fnmatch_lines(["*SETTINGS nspawn /x"])


def test_machines_fixtures_are_listed_with_their_scope_place_and_docstring(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import herd.testing

        @herd.testing.machines({"shared": {}}, scope="session")
        def fleet(machines):
            \"\"\"One machine for the whole session.\"\"\"
        """
    )
    pytester.makepyfile(
        test_web="""
        import herd.testing

        @herd.testing.machines({"server": {}, "client": {}}, scope="module", name="web")
        def web_machines(machines, tmp_path_factory):
            pass

        def test_web(web, fleet):
            pass
        """
    )
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*fixtures defined from conftest*",
            "fleet [[]session scope[]] -- conftest.py:3",
            "    One machine for the whole session.",
            "*fixtures defined from test_web*",
            "web [[]module scope[]] -- test_web.py:3",
            "    herd machines: server, client.",
        ]
    )


def test_a_machines_function_must_take_the_machines_and_not_yield(pytester: pytest.Pytester) -> None:
    import herd.testing

    with pytest.raises(TypeError, match="takes no argument; its first one is the machines"):
        herd.testing.machines({"m": {}})(lambda: None)

    def yields(machines: object) -> object:
        yield machines

    with pytest.raises(TypeError, match="yields; the run's teardown is herd's"):
        herd.testing.machines({"m": {}})(yields)
