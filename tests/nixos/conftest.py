"""The nixpkgs corpus boots real machines: it needs root, like tests/integration. Its machines get
their services as `packages`: layers that herd builds with the host's apt, from the mirror of the
host's apt sources. So the corpus needs apt, package lists that know its packages and, where the
host lacks some of them, a mirror that answers. Where one is missing, every test of the corpus
fails at once, with apt's words (`apt_mirror`): it is never skipped for it, and no test waits on
apt's timeouts."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from herd.host import packagelayer
from tests.nixos import corpus

# What `apt-get install --print-uris` prints per package to fetch: 'URI' FILE SIZE HASH.
FETCH = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) ")
# How apt says it knows no package of that name.
UNKNOWN = re.compile(r"Unable to locate package (\S+)|Package '(\S+)' has no installation candidate")
# Where the mirror does not answer, the probe gives up soon, as apt with its defaults would not.
PROBE_OPTIONS = ["-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=20"]
APT_HELPER = "/usr/lib/apt/apt-helper"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nixos_qemu: a corpus test that the qemu environment runs on VMs too")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="boots real machines: needs root")
    for item in items:
        if "tests/nixos/" in str(item.path):
            item.add_marker(skip)


def apt_said(output: str) -> str:
    """apt's errors and warnings in `output`, on one line."""
    said = [line.strip() for line in output.splitlines() if line.startswith(("E:", "W:"))]
    return "; ".join(said) or output.strip()


def fetch_list(packages: list[str]) -> subprocess.CompletedProcess[str]:
    """What apt would fetch to install `packages` on the host (`--print-uris`: nothing is fetched)."""
    argv = ["apt-get", "install", "--print-uris", "--no-install-recommends", "--quiet", "--quiet", *packages]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def mirror_problem(packages: list[str]) -> str | None:
    """Why the layers of `packages` cannot be built on this host, or None. Where apt does not know
    them all, the host's package lists are fetched once, as for the tests of `packages`."""
    if problem := packagelayer.host_problem():
        return problem
    listing = fetch_list(packages)
    update = ""
    if listing.returncode != 0:
        updating = subprocess.run(
            ["apt-get", "update", *PROBE_OPTIONS], capture_output=True, text=True, check=False
        )
        update = apt_said(updating.stdout + updating.stderr)
        listing = fetch_list(packages)
    if listing.returncode != 0:
        unknown = [next(filter(None, found.groups())) for found in UNKNOWN.finditer(listing.stderr)]
        said = f"it knows no package {', '.join(unknown)}" if unknown else apt_said(listing.stderr)
        return (
            f"apt cannot install the corpus's packages from the mirror of the host's apt sources: "
            f"{said} (apt-get update said: {update or 'nothing'})"
        )
    fetches = [
        (int(found["size"]), found["uri"]) for found in map(FETCH.match, listing.stdout.splitlines()) if found
    ]
    if not fetches:
        return None  # the host has them all: their layers are empty, and the mirror is never asked
    _, uri = min(fetches)
    with tempfile.TemporaryDirectory() as directory:
        sandbox = ["-o", "APT::Sandbox::User=root"]  # the file is root's, in a directory of root's
        argv = [APT_HELPER, *PROBE_OPTIONS, *sandbox, "download-file", uri, str(Path(directory, "probe.deb"))]
        fetch = subprocess.run(argv, capture_output=True, text=True, check=False)
    if fetch.returncode == 0:
        return None
    return (
        f"apt cannot reach its mirror: the corpus's machines need {len(fetches)} packages from it, and "
        f"fetching {uri} failed: {apt_said(fetch.stdout + fetch.stderr)}"
    )


@pytest.fixture(scope="session")
def apt_mirror() -> None:
    """Fail, once for the whole corpus, where its machines' packages cannot be installed."""
    if problem := mirror_problem(corpus.packages()):
        pytest.fail(problem, pytrace=False)
