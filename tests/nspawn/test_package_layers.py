"""Layers of packages in herd's cache, with real apt: built once and reused, built once for two runs
that need one at the same moment, and nothing a later run would use left by a build that is killed
or interrupted (what is left, `herd clean` removes). Each test has a cache of its own
($HERD_CACHE_DIR)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd import Test
from herd.host import imagecache
from tests.conftest import ROOT, SMALL, assert_nothing_left, run_and_check

HERD = str(Path(sys.executable).with_name("herd"))
TEST_FILE = f"""
import herd

test = herd.Test(
    name="hello",
    machines={{"m": {{"packages": ["{SMALL}"]}}}},
    script="assert m.succeed('hello') == 'Hello, world!\\\\n'",
)
"""
BUILDING = f"image host + {SMALL}: installing {SMALL} with apt"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "cache"
    monkeypatch.setenv("HERD_CACHE_DIR", str(directory))
    yield directory / "images"
    assert not _build_processes(directory), "a build outlived its run"


def _build_processes(cache: Path) -> list[int]:
    """The processes of a build into `cache` (their command lines name its scratch directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if str(cache).encode() in cmdline.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def _packages(cache: Path) -> list[imagecache.Entry]:
    return [entry for entry in imagecache.entries(cache) if entry.kind == "packages"]


def _start(test_file: Path, output: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HERD, "run", str(test_file), "--backend", "nspawn", "--output-dir", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def _run_id(output: Path) -> str:
    found = re.search(r"run ([a-z0-9]{5})", (output / "log.txt").read_text())
    assert found is not None
    return found.group(1)


def _building(tmp_path: Path, name: str) -> tuple[Path, subprocess.Popen[str]]:
    """A test file of one machine with packages, and a `herd run` of it, once its build has begun
    installing (its output in `tmp_path / name`)."""
    test_file = tmp_path / "hello.py"
    test_file.write_text(TEST_FILE)
    process = _start(test_file, tmp_path / name)
    log = tmp_path / name / "log.txt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and BUILDING in log.read_text():
            time.sleep(0.5)  # apt at work
            return test_file, process
        time.sleep(0.05)
    pytest.fail(f"the build did not begin: {process.poll()=}")


def test_a_layer_is_built_once_then_reused(apt_ready: None, cache: Path, tmp_path: Path) -> None:
    test = Test(
        name="reuse", machines={"m": {"packages": [SMALL]}}, script="assert 'Hello' in m.succeed('hello')"
    )
    first = run_and_check(test, "nspawn", tmp_path / "first")
    assert first.passed, first.error
    first_log = (tmp_path / "first" / "log.txt").read_text()
    assert BUILDING in first_log and f"image host + {SMALL}: ready in" in first_log
    [built] = _packages(cache)
    second = run_and_check(test, "nspawn", tmp_path / "second")
    assert second.passed, second.error
    assert "image " not in (tmp_path / "second" / "log.txt").read_text()  # nothing built, nothing said
    [reused] = _packages(cache)
    assert (reused.path, reused.created) == (built.path, built.created)
    assert reused.last_use >= built.last_use and reused.in_use  # this process holds it


def test_two_runs_that_need_a_layer_at_once_build_it_once(
    apt_ready: None, cache: Path, tmp_path: Path
) -> None:
    test_file = tmp_path / "hello.py"
    test_file.write_text(TEST_FILE)
    runs = [_start(test_file, tmp_path / name) for name in ("a", "b")]
    for run in runs:
        assert run.wait(300) == 0, run.stdout.read() if run.stdout else ""
    logs = [(tmp_path / name / "log.txt").read_text() for name in ("a", "b")]
    assert sum(BUILDING in log for log in logs) == 1, logs
    assert len(_packages(cache)) == 1
    for name in ("a", "b"):
        assert_nothing_left(_run_id(tmp_path / name))


def test_a_build_killed_with_its_run_leaves_nothing_a_run_uses_and_herd_clean_removes_the_rest(
    apt_ready: None, cache: Path, tmp_path: Path
) -> None:
    test_file, run = _building(tmp_path, "killed")
    run.kill()
    run.wait()
    deadline = time.monotonic() + 10
    while _build_processes(cache.parent) and time.monotonic() < deadline:
        time.sleep(0.05)  # the build dies with herd
    assert not _build_processes(cache.parent)
    assert _packages(cache) == [] and list(cache.glob(".build-packages-*"))
    cleaned = subprocess.run([HERD, "clean"], capture_output=True, text=True, check=True)
    assert "image cache: removed" in cleaned.stdout
    assert not list(cache.glob(".build-*"))
    assert_nothing_left(_run_id(tmp_path / "killed"))
    again = _start(test_file, tmp_path / "again")
    assert again.wait(300) == 0
    assert BUILDING in (tmp_path / "again" / "log.txt").read_text()


def test_ctrl_c_during_a_build_removes_it_and_tears_the_run_down(
    apt_ready: None, cache: Path, tmp_path: Path
) -> None:
    _, run = _building(tmp_path, "interrupted")
    run.send_signal(signal.SIGINT)
    assert run.wait(60) == 128 + signal.SIGINT
    assert run.stdout is not None and "herd: interrupted" in run.stdout.read()
    assert _packages(cache) == [] and not list(cache.glob(".build-*"))
    assert_nothing_left(_run_id(tmp_path / "interrupted"))
