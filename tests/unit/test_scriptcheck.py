"""Scripts are checked before anything boots: undefined names and unknown machine methods."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd import SpecError, Test
from herd.declare.scriptcheck import check, check_text
from herd.run.driver import Driver, RunOptions
from herd.run.machine import script_attributes
from tests.unit.test_namespace import plugins_with_a_container_backend

TYPOS = """
start_all()
sever.succeed("true")
server.succed("true")
client.wait_for_unit("x")
"""


def problems_of(test: Test) -> list[str]:
    return check(test.spec, test.source, script_attributes())


def test_an_undefined_name_and_an_unknown_method_name_the_test_file_line_and_a_close_name() -> None:
    test = Test(name="typos", machines={"server": {}, "client": {}}, script=TYPOS)
    undefined, unknown = problems_of(test)
    lines = Path(__file__).read_text().splitlines()
    assert undefined.startswith("test 'typos': tests/unit/test_scriptcheck.py:")
    line = int(undefined.split(":")[2])
    assert lines[line - 1] == 'sever.succeed("true")'
    assert "name 'sever' is not defined; did you mean 'server'?" in undefined
    assert "machine 'server' has no method or attribute 'succed'; did you mean 'succeed'?" in unknown
    assert lines[int(unknown.split(":")[2]) - 1] == 'server.succed("true")'
    assert "herd run --no-check" in unknown


def test_every_name_the_driver_gives_is_known_and_machine_is_the_single_machine() -> None:
    script = (
        "start_all(); join_all(); serial_stdout_on(); serial_stdout_off(); t.assertTrue(True)\n"
        "print(os.sep, vlans, driver.out_dir, machines, log, retry, subtest, create_machine)\n"
        "def is_up(m: BaseMachine) -> bool:\n    return m.is_up()\n"
        "with polling_condition(lambda: True):\n    machine.succeed('true')\n"
        "solo.nested('x'); machine.wait_for_shutdown(); machine.get_console_log()\n"
    )
    assert check_text(script, "t", {"solo"}, "<s>", 0, api=script_attributes()) == []
    [problem] = check_text("machine.succeed('x')", "t", {"a", "b"}, "<s>", 0, api=script_attributes())
    assert problem.startswith(
        "test 't': line 1 of the script: name 'machine' is not defined; 'machine' is the machine of a "
        "test of one machine only"
    )


def test_a_name_the_script_binds_itself_is_not_taken_for_a_machine() -> None:
    script = "server = {'a': 1}\nserver.items()\nfor client in [1]:\n    client.real\n"
    assert check_text(script, "t", {"server", "client"}, "<s>", 0, api=script_attributes()) == []


def test_attributes_a_machine_sets_on_itself_are_known() -> None:
    assert {"name", "spec", "succeed", "backend", "wait_for_shutdown"} <= script_attributes()
    assert (
        check_text(
            "print(server.name, server.spec.memory)", "t", {"server"}, "<s>", 0, api=script_attributes()
        )
        == []
    )


def test_a_function_script_gets_the_unknown_method_check() -> None:
    def script(server, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        server.wait_for_unti("x")

    [problem] = problems_of(Test(name="fn", machines={"server": {}}, script=script))
    assert (
        "machine 'server' has no method or attribute 'wait_for_unti'; did you mean 'wait_for_unit'?"
        in problem
    )
    line = int(problem.split(":")[2])
    assert Path(__file__).read_text().splitlines()[line - 1].strip() == 'server.wait_for_unti("x")'


def test_a_checked_test_fails_before_anything_starts_and_no_check_skips_it() -> None:
    plugins = plugins_with_a_container_backend()
    test = Test(
        name="typos", machines={"server": {"backend": "fake"}, "client": {"backend": "fake"}}, script=TYPOS
    )
    with pytest.raises(SpecError, match="2 problems"):
        Driver(test.spec, test.source, RunOptions(terminal=None), plugins)
    Driver(test.spec, test.source, RunOptions(terminal=None, check=False), plugins)
