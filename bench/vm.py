"""Time one VM booted and one command run, whole process, against virtme-ng on the same kernel.

Alternates, run by run: `herd run bench/one_vm.py` (one QEMU VM from the host image, systemd to
herd.target, `true` through herd's agent, clean power-off, everything removed) and
`vng --run KERNEL --disable-kvm --exec true` (virtme-ng, from PyPI, in a virtual environment of its
own that this script makes on its first run). Both run under TCG: virtme-ng is told so by
--disable-kvm, herd's VM by its `accelerator` option.
Then times `herd run examples/mixed.py` (a container and a VM on one network) on its own.
Writes the raw timings to bench/results/vm-<date>.json.

    .venv/bin/python bench/vm.py [-n 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from ping import machine_description, print_medians, record, summary

from herd_qemu.kernel import find_kernel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HERD = str(Path(sys.executable).with_name("herd"))
VNG_ENV = Path("/var/tmp/herd-bench-vng")
VNG = VNG_ENV / "bin" / "vng"


def ensure_virtme_ng() -> None:
    if not VNG.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VNG_ENV)], check=True)
        subprocess.run([str(VNG_ENV / "bin" / "pip"), "install", "-q", "virtme-ng"], check=True)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={"PATH": f"{VNG.parent}:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_virtme_ng()
    kernel, version = find_kernel()
    output = ["--output-dir", "/tmp/herd-bench-vm"]
    one_vm = [HERD, "run", str(HERE / "one_vm.py"), *output]
    mixed = [HERD, "run", str(ROOT / "examples" / "mixed.py"), *output]
    vng = [str(VNG), "--run", str(kernel), "--disable-kvm", "--exec", "true"]
    timed(one_vm)
    timed(vng)
    herd_times, vng_times, mixed_times = [], [], []
    for _ in range(args.runs):
        herd_times.append(timed(one_vm))
        vng_times.append(timed(vng))
    for _ in range(args.runs):
        mixed_times.append(timed(mixed))
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "kernel": version,
        "runs": args.runs,
        "herd": summary(herd_times),
        "virtme-ng": summary(vng_times),
        "mixed": summary(mixed_times),
        "ratio": statistics.median(herd_times) / statistics.median(vng_times),
    }
    record("vm", result)
    print_medians(
        [
            ("herd run bench/one_vm.py", result["herd"]),
            ("vng --disable-kvm", result["virtme-ng"]),
            ("herd run examples/mixed.py", result["mixed"]),
        ]
    )
    print(f"ratio herd/virtme-ng        {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
