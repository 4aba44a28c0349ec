"""The testcontainers-python side of bench/docker_ping.py: what examples/ping.py does, its way.

Two containers of the image named on the command line (herd's base image, with the host's /usr
bound read-only, so that the same ping runs in them) on a Docker network of their own, started
together, each pinging the other by its alias; then both are removed, and the network. They run
`sleep` rather than systemd, as testcontainers' users run them. Ryuk, testcontainers' reaper, is
off: its image would have to be pulled, and nothing may be.

    python bench/testcontainers_ping.py IMAGE    (with testcontainers installed)
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"  # read when testcontainers is imported

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

NAMES = ("machine1", "machine2")


def main() -> int:
    image = sys.argv[1]
    with Network() as network:
        machines = [
            DockerContainer(image)
            .with_command("sleep infinity")
            .with_volume_mapping("/usr", "/usr", "ro")
            .with_network(network)
            .with_network_aliases(name)
            for name in NAMES
        ]
        try:
            with ThreadPoolExecutor(len(machines)) as pool:
                list(pool.map(DockerContainer.start, machines))
            for machine, other in zip(machines, reversed(NAMES), strict=True):
                status, output = machine.exec(["ping", "-c", "1", "-W", "5", other])
                if status != 0:
                    print(output.decode(errors="replace"), file=sys.stderr)
                    return 1
        finally:
            for machine in machines:
                machine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
