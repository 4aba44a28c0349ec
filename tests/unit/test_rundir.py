"""A run's state directory: one clear error when the host cannot keep it, and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd import HerdError
from herd.host import rundir


def test_a_state_root_that_cannot_be_made_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("in the way\n")
    root = tmp_path / "file" / "herd"
    monkeypatch.setattr(rundir, "STATE_ROOT", root)
    with pytest.raises(HerdError) as caught:
        rundir.RunDir()
    assert str(caught.value) == f"cannot keep the run's state in {root}: Not a directory"


def test_a_run_directory_is_claimed_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rundir, "STATE_ROOT", tmp_path / "herd")
    run = rundir.RunDir()
    assert sorted(p.name for p in (tmp_path / "herd").iterdir()) == [run.id, f"{run.id}.lock"]
    assert rundir.try_lock(rundir.lock_path(run.id)) is None  # held by this run
    run.remove()
    assert list((tmp_path / "herd").iterdir()) == []
