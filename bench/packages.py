"""Packages on a machine: the first build of a layer, the boot of a machine on a cached one, disk.

In a cache of its own ($HERD_CACHE_DIR, a temporary directory; the host snapshot made first, so
that only layers are built), with machines on systemd-nspawn:

- first build: `herd run` of one machine with `packages` (mosquitto) while the cache lacks its
  layer, `--builds` times (default 3), the layer removed between runs; the build's own time is
  read from the run's log ("ready in …");
- cached boot: `herd run` of one machine that runs `true`, without packages and with them (the
  layer cached), alternating, `-n` times each (default 15) after one warm-up each; the whole
  process and the machine's boot as the log says it ("booted in …"); the target is at most 50 ms
  more with packages;
- disk: what each layer built takes (mosquitto, mosquitto-clients).

Prints medians and writes bench/results/packages-<date>.json.

    .venv/bin/python bench/packages.py [-n 15] [--builds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ping import machine_description, print_medians, record, summary

from herd.host import imagecache

HERE = Path(__file__).resolve().parent
HERD = str(Path(sys.executable).with_name("herd"))
OUTPUT = Path("/tmp/herd-bench-packages")
PACKAGES = ("mosquitto", "mosquitto-clients")
TEST = """
import herd

test = herd.Test(name="{name}", machines={{"m": {machine}}}, script="m.succeed('true')")
"""


def write_test(directory: Path, name: str, packages: tuple[str, ...]) -> Path:
    path = directory / f"{name}.py"
    machine = {"packages": list(packages)} if packages else {}
    path.write_text(TEST.format(name=name, machine=machine))
    return path


def timed_run(test_file: Path) -> tuple[float, str]:
    """The whole `herd run` of `test_file`, in seconds, and its log."""
    shutil.rmtree(OUTPUT, ignore_errors=True)
    started = time.perf_counter()
    argv = [HERD, "run", str(test_file), "--backend", "nspawn", "-o", str(OUTPUT)]
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started, (OUTPUT / "log.txt").read_text()


def logged_seconds(pattern: str, log: str) -> float:
    found = re.search(pattern + r" ([0-9.]+) s", log)
    assert found is not None, f"{pattern!r} is not in the log:\n{log}"
    return float(found.group(1))


def layers() -> list[imagecache.Entry]:
    return [entry for entry in imagecache.entries() if entry.kind == "packages"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    parser.add_argument("--builds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herd-bench-packages-", dir="/var/tmp") as scratch:
        os.environ["HERD_CACHE_DIR"] = str(Path(scratch) / "cache")
        plain = write_test(Path(scratch), "plain", ())
        with_layer = write_test(Path(scratch), "packages", PACKAGES[:1])
        timed_run(plain)  # the host snapshot, into the new cache
        first_runs, builds = [], []
        for _ in range(args.builds):
            imagecache.prune(kind="packages")
            seconds, log = timed_run(with_layer)
            first_runs.append(seconds)
            builds.append(logged_seconds(r"image host \+ mosquitto: ready in", log))
        timed_run(plain)
        plain_runs, plain_boots, layer_runs, layer_boots = [], [], [], []
        for _ in range(args.runs):
            for runs, boots, test_file in (
                (plain_runs, plain_boots, plain),
                (layer_runs, layer_boots, with_layer),
            ):
                seconds, log = timed_run(test_file)
                runs.append(seconds)
                boots.append(logged_seconds("m: booted in", log))
        timed_run(write_test(Path(scratch), "clients", PACKAGES[1:]))
        disk = {entry.description: entry.size for entry in layers()}
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "builds": args.builds,
        "runs": args.runs,
        "first_run": summary(first_runs),
        "first_build": summary(builds),
        "plain_run": summary(plain_runs),
        "layer_run": summary(layer_runs),
        "plain_boot": summary(plain_boots),
        "layer_boot": summary(layer_boots),
        "overhead_run": statistics.median(layer_runs) - statistics.median(plain_runs),
        "overhead_boot": statistics.median(layer_boots) - statistics.median(plain_boots),
        "disk": disk,
    }
    record("packages", result)
    print_medians(
        [
            ("first run, building the mosquitto layer", result["first_run"]),
            ("the build alone (from its log)", result["first_build"]),
            ("run, no packages", result["plain_run"]),
            ("run, mosquitto's layer cached", result["layer_run"]),
            ("boot, no packages (from the log)", result["plain_boot"]),
            ("boot, mosquitto's layer cached", result["layer_boot"]),
        ]
    )
    print(f"cached layer overhead: {result['overhead_run'] * 1000:+.0f} ms a run, "
          f"{result['overhead_boot'] * 1000:+.0f} ms a boot (target: at most 50 ms)")  # fmt: skip
    for description, size in disk.items():
        print(f"disk: {description}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
