"""Time one command on a running machine: `succeed("true")` through herd's agent, against the raw
way in the same machine, a new `nsenter` into the container's namespaces for each command.

One nspawn machine boots; then, alternating, N commands through herd and N through `nsenter
--target <leader> --all bash -c true` (the NixOS container backend's way, without its login
shell). Prints the medians and the ratio, and writes the raw timings to
bench/results/command-<date>.json.

    sudo .venv/bin/python bench/command.py [-n 500]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from ping import compare

import herd


def measure(runs: int) -> tuple[list[float], list[float]]:
    """(herd's, raw) seconds per command, `runs` of each, alternating."""
    timings: tuple[list[float], list[float]] = ([], [])

    def script(m, driver) -> None:  # type: ignore[no-untyped-def]
        m.succeed("true")
        leader = driver.handle_of(m).leader
        raw = ["nsenter", "--target", str(leader), "--all", "bash", "-c", "true"]
        for _ in range(runs):
            started = time.perf_counter()
            m.succeed("true")
            timings[0].append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(raw, check=True)
            timings[1].append(time.perf_counter() - started)

    test = herd.Test(name="command", machines={"m": {"backend": "nspawn"}}, script=script)
    outcome = test.run(output_dir=Path("/tmp/herd-bench-command"), terminal=None)
    if not outcome.passed:
        raise SystemExit(f"the benchmark's run failed: {outcome.error}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=500)
    args = parser.parse_args()
    herd_times, raw_times = measure(args.runs)
    result = compare("command", args.runs, herd_times, raw_times)
    for label, times in (
        ('herd succeed("true")', result["herd"]),
        ("raw nsenter per command", result["raw"]),
    ):
        spread = f"(min {times['min'] * 1000:.2f}, p90 {times['p90'] * 1000:.2f})"
        print(f"{label:<25}median {times['median'] * 1000:.2f} ms  {spread}")
    print(f"{'ratio herd/raw':<25}{result['ratio']:.2f}")


if __name__ == "__main__":
    main()
