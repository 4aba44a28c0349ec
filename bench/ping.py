"""Time `herd run examples/ping.py` as a whole process against a raw systemd-nspawn shell script.

Both run alternately in the same session, N times each (default 15), after one warm-up run each.
Prints medians and the ratio, and writes the raw timings to bench/results/ping-<date>.json.

    sudo .venv/bin/python bench/ping.py [-n 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HERD = [str(Path(sys.executable).with_name("herd")), "run", str(ROOT / "examples" / "ping.py")]
RAW = ["bash", str(HERE / "raw-ping.sh")]


def timed(argv: list[str], output_dir: Path) -> float:
    shutil.rmtree(output_dir, ignore_errors=True)  # each run writes its output afresh, as a user's does
    started = time.perf_counter()
    subprocess.run(
        [*argv, "--output-dir", str(output_dir)] if argv is HERD else argv,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def machine_description() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_gib = int(meminfo.readline().split()[1]) / 2**20
    return f"{os.cpu_count()} cores ({model}), {memory_gib:.0f} GiB, Linux {platform.release()}"


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def record(kind: str, result: dict[str, object]) -> None:
    """Keep a benchmark's raw result as bench/results/<kind>-<date>.json (not committed)."""
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(result, indent=2))


def compare(kind: str, runs: int, herd: list[float], raw: list[float]) -> dict[str, Any]:
    """herd's timings against the raw baseline's of the same session, kept (`record`) and returned."""
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "runs": runs,
        "herd": summary(herd),
        "raw": summary(raw),
        "ratio": statistics.median(herd) / statistics.median(raw),
    }
    record(kind, result)
    return result


def print_medians(rows: list[tuple[str, dict[str, float]]]) -> None:
    """One line per side of a benchmark: its label, then the median, min and p90 of its summary."""
    width = max(len(label) for label, _ in rows) + 2
    for label, times in rows:
        spread = f"(min {times['min']:.3f}, p90 {times['p90']:.3f})"
        print(f"{label:<{width}}median {times['median']:.3f} s  {spread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    args = parser.parse_args()
    output_dir = Path("/tmp/herd-bench-ping")
    timed(HERD, output_dir)
    timed(RAW, output_dir)
    herd, raw = [], []
    for _ in range(args.runs):
        herd.append(timed(HERD, output_dir))
        raw.append(timed(RAW, output_dir))
    result = compare("ping", args.runs, herd, raw)
    print_medians([("herd run examples/ping.py", result["herd"]), ("raw nspawn shell script", result["raw"])])
    print(f"ratio herd/raw             {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
