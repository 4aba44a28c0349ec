"""Where a run's output goes: an absolute directory below herd-output, whatever the test's name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herd import HerdError
from herd.run.outputdir import default_output_dir, make_output_dir, shown_path


def test_the_default_output_directory_is_absolute_with_a_latest_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    directory = make_output_dir(None, "ping", "k3mol")
    assert directory.is_absolute() and directory.is_dir()
    assert directory.parent == tmp_path / "herd-output" / "ping"
    assert directory.name.endswith("-k3mol")
    assert (directory.parent / "latest").resolve() == directory
    assert shown_path(directory) == f"herd-output/ping/{directory.name}"


def test_a_relative_chosen_directory_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    directory = make_output_dir(Path("../out/./run"), "ping", "k3mol")
    assert directory == tmp_path / "out" / "run"
    assert directory.is_dir()
    assert shown_path(directory) == str(directory)  # not below the working directory: shown whole


@pytest.mark.parametrize("name", ["/tmp/x", "../../x", "..", ".", "a\0b", ""])
def test_no_test_name_leads_out_of_herd_output(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec that did not go through validation is checked again where the path is made."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HerdError):
        default_output_dir(name, "k3mol")
    made = [os.path.join(root, entry) for root, dirs, files in os.walk(tmp_path) for entry in dirs + files]
    assert made == []
