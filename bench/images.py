"""A Debian image: its first build, and the boot of a machine of it once cached, against the host image.

First, `debian:bookworm` is built into an empty cache of its own (HERD_CACHE_DIR in a temporary
directory), as a first run on a new host builds it: the time and the cache entry's size on disk.
Then, alternating, N whole `herd run` processes of one machine that runs one command, on the
cached Debian image and on the host image. Prints medians and the ratio, and writes the raw
timings to bench/results/images-<date>.json.

    sudo .venv/bin/python bench/images.py [-n 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ping import compare, print_medians

TEST = """import herd

test = herd.Test(name="image", machines={{"m": {{"image": {image!r}}}}}, script='m.succeed("true")')
"""
HERD = str(Path(sys.executable).with_name("herd"))


def run(test: Path, output: Path, environment: dict[str, str]) -> float:
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [HERD, "run", str(test), "--output-dir", str(output)],
        check=True,
        capture_output=True,
        env=environment,
    )
    return time.perf_counter() - started


def disk_usage(path: Path) -> int:
    """Bytes the tree takes on disk (each hard-linked file once)."""
    used = subprocess.run(
        ["du", "-s", "--block-size=1", str(path)], check=True, capture_output=True, text=True
    )
    return int(used.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herd-bench-images-"))
    try:
        tests = {}
        for name, image in (("debian", "debian:bookworm"), ("host", "host")):
            tests[name] = work / f"{name}.py"
            tests[name].write_text(TEST.format(image=image))
        cache = work / "cache"
        fresh = dict(os.environ, HERD_CACHE_DIR=str(cache))
        first_build = run(tests["debian"], work / "out", fresh)
        entries = [p for p in (cache / "images").iterdir() if p.name.startswith("debian-")]
        size = sum(disk_usage(entry) for entry in entries)
        print(f"first run of debian:bookworm, building it: {first_build:.1f} s")
        print(f"its cache entry: {size / 2**20:.0f} MiB")
        timings: dict[str, list[float]] = {"debian": [], "host": []}
        for name in timings:  # a warm-up each
            run(tests[name], work / "out", fresh)
        for _ in range(args.runs):
            for name, samples in timings.items():
                samples.append(run(tests[name], work / "out", fresh))
        result = compare("images", args.runs, timings["debian"], timings["host"])
        print_medians([("debian:bookworm, cached", result["herd"]), ("host image", result["raw"])])
        print(f"ratio debian/host: {result['ratio']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
