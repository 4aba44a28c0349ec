"""Time the two-machine ping on Docker: herd's docker backend, its nspawn backend, testcontainers.

Each is timed as a whole process, N times (default 15) after one warm-up, the three alternating:
`herd run examples/ping.py --backend docker`, the same with `--backend nspawn`, and
bench/testcontainers_ping.py (testcontainers-python: two containers of herd's base image on a
Docker network, pinging each other by name). testcontainers lives in a virtual environment of its
own, made on the first run (pip install testcontainers); nothing is pulled from a registry. Prints
medians and writes the raw timings to bench/results/docker-ping-<date>.json.

    .venv/bin/python bench/docker_ping.py [-n 15]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import docker
from ping import machine_description, print_medians, record, summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HERD = str(Path(sys.executable).with_name("herd"))
TESTCONTAINERS_VENV = Path("/var/tmp/herd-bench-testcontainers")
OUTPUT = Path("/tmp/herd-bench-docker-ping")


def testcontainers_python() -> str:
    """The Python of testcontainers' own environment, made once."""
    python = TESTCONTAINERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TESTCONTAINERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "testcontainers"], check=True)
    return str(python)


def herd(backend: str) -> list[str]:
    return [HERD, "run", str(ROOT / "examples" / "ping.py"), "--backend", backend, "-o", str(OUTPUT)]


def base_image() -> str:
    """herd's base image for host-image machines, which the warm-up herd run has imported (the
    newest, should the host's top level have changed since an older one was)."""
    images = docker.from_env().images.list(filters={"label": "herd.image=host-root"})
    return str(max(images, key=lambda image: image.attrs["Created"]).tags[0])


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    args = parser.parse_args()
    timed(herd("docker"))
    contenders = {
        "herd --backend docker": herd("docker"),
        "herd --backend nspawn": herd("nspawn"),
        "testcontainers-python": [
            testcontainers_python(),
            str(HERE / "testcontainers_ping.py"),
            base_image(),
        ],
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for argv in contenders.values():
        timed(argv)
    for _ in range(args.runs):
        for name, argv in contenders.items():
            samples[name].append(timed(argv))
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "runs": args.runs,
        "engine": docker.from_env().version()["Version"],
        **{name: summary(times) for name, times in samples.items()},
    }
    record("docker-ping", result)
    print_medians([(name, result[name]) for name in samples])


if __name__ == "__main__":
    main()
