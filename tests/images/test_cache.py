"""Image roots in herd's cache: reused by a later run, built once by two runs at once, and never
half-built for a later run after a build was killed. Each test has a cache of its own
(HERD_CACHE_DIR) and unpacks the local Docker image saved to a file (a few seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from herd.host import imagecache
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacks images as root")
RESOLVE = """
import sys
from herd.declare.spec import parse_test
from herd_images import oci
machine = parse_test("t", {"m": {"image": "oci:" + sys.argv[1]}}, "pass").machines[0]
root = oci.resolve(machine, "oci", lambda step: print("step", step, flush=True))
print("etc", root.tree("/etc").layers[0].path, flush=True)
"""


def resolve(image: Path, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RESOLVE, str(image)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, HERD_CACHE_DIR=str(cache)),
    )


def lines(process: subprocess.Popen[str]) -> list[str]:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    return out.splitlines()


def test_a_second_run_reuses_the_root(saved_image: Path, tmp_path: Path) -> None:
    first = lines(resolve(saved_image, tmp_path))
    assert any(line.startswith("step unpacking layer") for line in first)
    started = time.monotonic()
    second = lines(resolve(saved_image, tmp_path))
    assert [line for line in second if line.startswith("step")] == []  # nothing built
    assert second[-1] == first[-1]
    assert time.monotonic() - started < 5.0


def test_two_runs_at_once_build_it_once(saved_image: Path, tmp_path: Path) -> None:
    both = [resolve(saved_image, tmp_path), resolve(saved_image, tmp_path)]
    outputs = [lines(process) for process in both]
    unpacked = [any(line.startswith("step unpacking layer") for line in out) for out in outputs]
    assert sorted(unpacked) == [False, True]
    assert outputs[0][-1] == outputs[1][-1]
    entries = [entry.name for entry in imagecache.entries(tmp_path / "images")]
    assert len(entries) == 1 and entries[0].startswith("oci-")
    assert not list((tmp_path / "images").glob(".build-*"))


def test_a_killed_build_leaves_nothing_a_later_run_uses(saved_image: Path, tmp_path: Path) -> None:
    process = resolve(saved_image, tmp_path)
    assert process.stdout is not None
    while not (process.stdout.readline() or "step unpacking layer").startswith("step unpacking layer"):
        pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    images = tmp_path / "images"
    assert imagecache.entries(images) == []  # only debris, which no run uses
    assert list(images.glob(".build-oci-*"))
    later = lines(resolve(saved_image, tmp_path))
    assert any(line.startswith("step unpacking layer") for line in later)
    assert Path(later[-1].split(" ", 1)[1], "os-release").exists()
    assert not list(images.glob(".build-oci-*"))  # the later build cleared its dead predecessor's
