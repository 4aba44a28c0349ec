"""`herd run FILE` loads the file: one line, with the file and its line, for a file that does not run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from herd import HerdError, SpecError
from herd.run.loader import load_tests


def load_error(tmp_path: Path, source: str) -> str:
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent(source))
    with pytest.raises(HerdError) as caught:
        load_tests(path)
    return str(caught.value)


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "import herd\n\ntest = herd.Test(\n")
    assert message == f"{tmp_path}/bad.py:3: SyntaxError: '(' was never closed"


def test_an_exception_at_import_names_the_line_of_the_file_that_raised(tmp_path: Path) -> None:
    source = """
        import herd

        def helper():
            return {}["machines"]

        test = herd.Test(name="t", machines=helper(), script="")
        """
    assert load_error(tmp_path, source) == f"{tmp_path}/bad.py:5: KeyError: 'machines'"


def test_an_exception_raised_elsewhere_names_the_line_of_the_file_that_led_there(tmp_path: Path) -> None:
    message = load_error(tmp_path, "import json\n\njson.loads('{')\n")
    assert message.startswith(f"{tmp_path}/bad.py:3: JSONDecodeError: Expecting property name")


def test_a_missing_module_is_one_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "import herd_no_such_module\n")
    assert message == f"{tmp_path}/bad.py:1: ModuleNotFoundError: No module named 'herd_no_such_module'"


def test_an_invalid_declaration_keeps_its_own_message(tmp_path: Path) -> None:
    path = tmp_path / "invalid.py"
    path.write_text('import herd\ntest = herd.Test(name="../x", machines={"a": {}}, script="")\n')
    with pytest.raises(SpecError) as caught:
        load_tests(path)
    assert "the test name '../x' cannot name a directory" in str(caught.value)
