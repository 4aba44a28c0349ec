"""Many machines at once: herd against a raw shell script of the same shape, in the same session.

N machines on the host image (systemd-nspawn), on one network, all booted, each running one
command (a ping to m0 by name), all torn down. Measures the whole process's wall time and the host
memory the running machines took once all are up (the PSS of their processes, and of herd's own for herd),
per machine; see pss.py.

    sudo .venv/bin/python bench/many.py [-n 24 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
HERD = str(Path(sys.executable).with_name("herd"))
TEST = """
import os, sys
import herd
sys.path.insert(0, {bench!r})
from pss import descendants, in_cgroup, pss_kib

def script(machines, start_all, driver):
    start_all()
    processes = set(in_cgroup(f"/herd/{{driver.run_id}}/")) | set(descendants(os.getpid()))
    with open({memory!r}, "w") as out:
        out.write(str(pss_kib(processes)))
    for machine in machines:
        machine.succeed("ping -c 1 -W 5 m0")

test = herd.Test(name="many", machines={{f"m{{i}}": {{}} for i in range({count})}}, script=script)
"""


def herd_run(count: int, scratch: Path) -> tuple[float, int]:
    memory = scratch / "memory"
    test_file = scratch / f"many{count}.py"
    test_file.write_text(TEST.format(memory=str(memory), count=count, bench=str(HERE)))
    started = time.perf_counter()
    subprocess.run([HERD, "run", str(test_file), "-o", str(scratch / "out")], check=True, capture_output=True)
    return time.perf_counter() - started, int(memory.read_text())


def raw_run(count: int) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        ["bash", str(HERE / "raw-many.sh"), str(count)], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - started, int(result.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--machines", type=int, nargs="+", default=[24, 100])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from ping import machine_description, record

    results = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for count in args.machines:
            herd, raw = [], []
            for _ in range(args.runs):
                herd.append(herd_run(count, Path(scratch)))
                raw.append(raw_run(count))
            entry = {
                "runs": args.runs,
                "herd_seconds": statistics.median(t for t, _ in herd),
                "raw_seconds": statistics.median(t for t, _ in raw),
                "herd_mib_per_machine": statistics.median(m for _, m in herd) / 1024 / count,
                "raw_mib_per_machine": statistics.median(m for _, m in raw) / 1024 / count,
            }
            entry["ratio"] = entry["herd_seconds"] / entry["raw_seconds"]
            results["sizes"][count] = entry
            memory = (
                f"herd {entry['herd_mib_per_machine']:.1f} MiB, raw {entry['raw_mib_per_machine']:.1f} MiB"
            )
            print(
                f"{count:>4} machines: herd {entry['herd_seconds']:.2f} s, raw {entry['raw_seconds']:.2f} s, "
                f"ratio {entry['ratio']:.2f}; memory per machine: {memory}",
                flush=True,
            )
    record("many", results)


if __name__ == "__main__":
    main()
