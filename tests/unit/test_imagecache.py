"""herd's image cache: entries built once and atomically, held while in use, listed and pruned."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.cli.images import duration
from herd.host import imagecache

FORK = multiprocessing.get_context("fork")


def _writer(calls: list[Path]) -> Callable[[Path], None]:
    def build(directory: Path) -> None:
        calls.append(directory)
        (directory / "usr").mkdir()
        (directory / "usr" / "tool").write_text("made\n")

    return build


def _visible(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir() if path.name != imagecache.LOCKS)


def test_an_entry_is_built_once_then_taken_from_the_cache(tmp_path: Path) -> None:
    calls: list[Path] = []
    first = imagecache.ensure("packages", "k1", "tool over host", _writer(calls), root=tmp_path)
    again = imagecache.ensure("packages", "k1", "tool over host", _writer(calls), root=tmp_path)
    assert first == again == tmp_path / "packages-k1" and len(calls) == 1
    assert (first / "usr" / "tool").read_text() == "made\n"
    assert calls[0].name.startswith(".build-packages-k1-")  # built aside, then renamed into place
    assert _visible(tmp_path) == ["packages-k1"]
    [entry] = imagecache.entries(tmp_path)
    assert (entry.kind, entry.key, entry.description, entry.in_use) == (
        "packages",
        "k1",
        "tool over host",
        True,
    )
    assert entry.size >= 4096


def test_a_failed_build_leaves_nothing_and_says_why(tmp_path: Path) -> None:
    def fail(directory: Path) -> None:
        (directory / "half").write_text("half-built")
        raise RuntimeError("apt said no")

    with pytest.raises(RuntimeError, match="apt said no"):
        imagecache.ensure("packages", "bad", "", fail, root=tmp_path)
    assert _visible(tmp_path) == []
    calls: list[Path] = []
    imagecache.ensure("packages", "bad", "", _writer(calls), root=tmp_path)
    assert len(calls) == 1


def _slow_build(root: Path, marks: Path) -> None:
    def build(directory: Path) -> None:
        with open(marks, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        (directory / "done").write_text("yes")

    imagecache.ensure("packages", "shared", "", build, root=root)


def test_two_processes_that_need_one_entry_build_it_once(tmp_path: Path) -> None:
    marks = tmp_path / "builders"
    processes = [FORK.Process(target=_slow_build, args=(tmp_path / "cache", marks)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert len(marks.read_text().split()) == 1
    assert (tmp_path / "cache" / "packages-shared" / "done").read_text() == "yes"


def _build_forever(root: Path, started: Path) -> None:
    def build(directory: Path) -> None:
        (directory / "half").write_text("half-built")
        started.touch()
        time.sleep(60)

    imagecache.ensure("packages", "killed", "", build, root=root)


def test_a_killed_build_leaves_debris_that_no_run_uses_and_clean_removes(tmp_path: Path) -> None:
    root, started = tmp_path / "cache", tmp_path / "started"
    builder = FORK.Process(target=_build_forever, args=(root, started))
    builder.start()
    while not started.exists():
        time.sleep(0.01)
    [building] = root.glob(".build-*")
    assert imagecache.remove_debris(root) == []  # its builder lives: not debris yet
    os.kill(builder.pid or 0, signal.SIGKILL)
    builder.join()
    assert imagecache.entries(root) == []
    assert imagecache.remove_debris(root, dry_run=True) == [building] and building.exists()
    calls: list[Path] = []
    entry = imagecache.ensure("packages", "killed", "", _writer(calls), root=root)
    assert not (entry / "half").exists() and len(calls) == 1
    assert not building.exists()  # the next build of that entry cleared it


def _use_and_exit(root: Path, key: str) -> None:
    imagecache.ensure("packages", key, "", lambda directory: None, root=root)


def test_prune_removes_unused_entries_and_never_one_in_use(tmp_path: Path) -> None:
    for key in ("old", "recent"):
        process = FORK.Process(target=_use_and_exit, args=(tmp_path, key))
        process.start()
        process.join()
    held = imagecache.ensure("packages", "held", "", lambda directory: None, root=tmp_path)
    long_ago = time.time() - 3 * 86400
    for name in ("packages-old", "packages-held"):
        os.utime(tmp_path / name / imagecache.ENTRY_FILE, (long_ago, long_ago))
    (tmp_path / ".trash-packages-x-1234").mkdir()  # an interrupted prune's
    removed = imagecache.prune(86400, root=tmp_path)
    assert [entry.name for entry in removed] == ["packages-old"]
    assert _visible(tmp_path) == ["packages-held", "packages-recent"]
    assert {e.name: e.in_use for e in imagecache.entries(tmp_path)} == {
        "packages-held": True,
        "packages-recent": False,
    }
    assert [e.name for e in imagecache.prune(root=tmp_path)] == ["packages-recent"]
    assert held.is_dir()


def test_an_entry_pruned_by_another_process_is_built_anew(tmp_path: Path) -> None:
    process = FORK.Process(target=_use_and_exit, args=(tmp_path, "gone"))
    process.start()
    process.join()
    assert [e.name for e in imagecache.prune(root=tmp_path)] == ["packages-gone"]
    calls: list[Path] = []
    imagecache.ensure("packages", "gone", "", _writer(calls), root=tmp_path)
    assert len(calls) == 1


def test_the_cache_follows_herd_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERD_CACHE_DIR", raising=False)
    assert imagecache.images_dir() == Path("/var/cache/herd/images")
    monkeypatch.setenv("HERD_CACHE_DIR", str(tmp_path))
    assert imagecache.images_dir() == tmp_path / "images"


def _herd(cache: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, HERD_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "herd", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def test_herd_images_lists_the_cache_and_prune_empties_it(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for key in ("one", "two"):
        process = FORK.Process(target=_use_and_exit, args=(images, key))
        process.start()
        process.join()
    long_ago = time.time() - 3 * 3600
    os.utime(images / "packages-one" / imagecache.ENTRY_FILE, (long_ago, long_ago))
    listing = json.loads(_herd(tmp_path, "images", "--json").stdout)
    assert listing["directory"] == str(images)
    assert [(e["name"], e["in_use"]) for e in listing["entries"]] == [
        ("packages-two", False),
        ("packages-one", False),
    ]
    assert "packages  " in _herd(tmp_path, "images").stdout
    pruned = json.loads(_herd(tmp_path, "images", "prune", "--older-than", "2h", "--json").stdout)
    assert [e["name"] for e in pruned["removed"]] == ["packages-one"]
    assert "removed packages two" in _herd(tmp_path, "images", "prune").stdout
    assert "nothing cached" in _herd(tmp_path, "images").stdout
    refused = _herd(tmp_path, "images", "prune", "--older-than", "soon")
    assert refused.returncode == 2 and "'soon' is not a duration" in refused.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds
