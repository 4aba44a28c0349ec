"""Scripts run with the driver's names in scope, and failures point at the script's own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.declare.script import ScriptSource, compile_script, run_script, script_frames
from herd.errors import HerdError, ScriptExitError
from herd.run.loader import load_tests

SCRIPT = """
x = 1
raise RuntimeError("boom")
"""


def test_a_string_script_is_compiled_at_its_place_in_the_declaring_file() -> None:
    source = ScriptSource(__file__, 1)
    with pytest.raises(RuntimeError) as caught:
        run_script(SCRIPT, {}, "t", source)
    frame = script_frames(caught.value, source)[-1]  # the frames before it are this test's own
    assert frame.filename == __file__
    assert frame.line == 'raise RuntimeError("boom")'
    with open(__file__) as handle:
        assert handle.read().splitlines()[frame.lineno - 1] == 'raise RuntimeError("boom")'
    assert frame.lineno < 20  # the SCRIPT constant near the top, not this test's own raise


def test_a_script_not_found_in_a_file_still_shows_its_lines() -> None:
    source = ScriptSource(None, None)
    code = compile_script("a = 1\nb = a.nope\n", "demo", source)
    with pytest.raises(AttributeError) as caught:
        exec(code, {})
    [frame] = script_frames(caught.value, source)
    assert frame.filename == "<herd script of demo>" and frame.lineno == 2 and frame.line == "b = a.nope"


def test_a_function_script_gets_the_names_it_asks_for() -> None:
    seen = {}

    def script(machine1, start_all) -> None:  # type: ignore[no-untyped-def]
        seen.update(machine1=machine1, start_all=start_all)

    run_script(
        script, {"machine1": "m", "start_all": "s", "machine2": "other"}, "t", ScriptSource(None, None)
    )
    assert seen == {"machine1": "m", "start_all": "s"}


def test_frames_match_a_file_named_by_a_relative_path(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "case.py").write_text("def script():\n    raise KeyError('here')\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile((tmp_path / "case.py").read_text(), "case.py", "exec"), namespace)  # as runpy does
    source = ScriptSource(str(tmp_path / "case.py"), 1)
    with pytest.raises(KeyError) as caught:
        run_script(namespace["script"], {}, "t", source)  # type: ignore[arg-type]
    [frame] = [f for f in script_frames(caught.value, source) if f.name == "script"]
    assert frame.lineno == 2


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("import sys\nsys.exit(3)\n", "3"),
        ("import sys\nsys.exit()\n", "0"),
        ("raise SystemExit('bye')\n", "'bye'"),
    ],
)
def test_an_exit_from_a_script_fails_its_test_naming_the_code_and_line(script: str, code: str) -> None:
    with pytest.raises(ScriptExitError) as caught:
        run_script(script, {}, "t", ScriptSource(None, None))
    assert str(caught.value) == (
        f"test 't': the script exited with code {code} (SystemExit) at <herd script of t>:"
        f"{script.count(chr(10))}; a script passes by returning, so the test fails"
    )


def test_a_keyboard_interrupt_raised_by_a_function_script_fails_its_test() -> None:
    def script() -> None:
        raise KeyboardInterrupt

    source = ScriptSource(__file__, None)
    with pytest.raises(ScriptExitError, match=r"raised KeyboardInterrupt at .*test_script\.py:") as caught:
        run_script(script, {}, "t", source)
    assert script_frames(caught.value, source)[-1].line == "raise KeyboardInterrupt"


def test_a_test_file_that_exits_while_loading_is_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(5)\n")
    with pytest.raises(HerdError, match=r"exits.py exited with code 5 \(SystemExit\) while herd loaded it"):
        load_tests(path)
