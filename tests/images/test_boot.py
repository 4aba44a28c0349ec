"""Machines of Debian, OCI and NixOS images booting beside machines of the host image, on each
backend that boots them: nspawn, docker and qemu (a VM under TCG takes several seconds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from herd import Test
from herd.hooks.manager import Plugins
from herd.run.driver import Outcome
from tests.conftest import run_and_check
from tests.images.conftest import MARKER
from tests.images.nixos_store import MARKER as NIXOS_MARKER

BACKENDS = ("nspawn", "docker", "qemu")
# A file the host has and a Debian root of herd's does not.
HOST_ONLY = "/usr/bin/qemu-system-x86_64"
SERVER = "[Service]\nExecStart=/usr/bin/python3 -m http.server --bind :: 8000 --directory /etc\n"
FETCH = (
    "python3 -c 'import urllib.request as u; print(u.urlopen(\"http://{}:8000/hostname\").read().decode())'"
)


def run(test: Test, backend: str, tmp_path: Path) -> Outcome:
    """Run `test` on `backend`, skipped where that backend is not installed; it must pass."""
    if backend not in Plugins().load_all().backends:
        pytest.skip(f"backend {backend!r} is not installed")
    outcome = run_and_check(test, backend=backend, output_dir=tmp_path / "out")
    assert outcome.passed, outcome.error
    return outcome


def talking(image: object, backend: str) -> Test:
    """A machine of `image` and one of the host image, each fetching from the other's server."""

    def script(own, host, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        own.fail(f"test -e {HOST_ONLY}")
        host.succeed(f"test -e {HOST_ONLY}")
        own.wait_for_open_port(8000)
        host.wait_for_open_port(8000)
        assert own.succeed(FETCH.format("host")).strip() == "host"
        assert host.succeed(FETCH.format("own")).strip() == "own"

    machines = {
        "own": {"image": image, "units": {"web.service": SERVER}, "services": ["web.service"]},
        "host": {"units": {"web.service": SERVER}, "services": ["web.service"]},
    }
    return Test(name=f"talking-{backend}", machines=machines, script=script)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bookworm_machine_beside_a_host_machine(backend: str, debian_root: Path, tmp_path: Path) -> None:
    run(talking("debian:bookworm", backend), backend, tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_image_of_the_docker_engine_with_its_whiteouts(
    backend: str, docker_image: str, tmp_path: Path
) -> None:
    def script(own, host, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        assert own.succeed(f"cat {MARKER}") == "oci\n"
        own.fail("test -e /etc/issue.net")  # a whiteout of the upper layer
        assert own.succeed("ls /usr/share/doc") == "only\n"  # an opaque directory
        own.wait_for_open_port(8000)
        assert host.succeed(FETCH.format("own")).strip() == "own"

    machines = {
        "own": {
            "image": f"docker:{docker_image}",
            "units": {"web.service": SERVER},
            "services": ["web.service"],
        },
        "host": {},
    }
    run(Test(name=f"docker-image-{backend}", machines=machines, script=script), backend, tmp_path)


def test_a_saved_image_is_the_engines_image(saved_image: Path, docker_image: str, tmp_path: Path) -> None:
    """`oci:` of the engine's image saved to a file boots from the root `docker:` unpacked."""

    def script(own) -> None:  # type: ignore[no-untyped-def]
        assert own.succeed(f"cat {MARKER}") == "oci\n"

    test = Test(name="saved", machines={"own": {"image": f"oci:{saved_image}"}}, script=script)
    outcome = run(test, "nspawn", tmp_path)
    assert not re.search(r"unpacking layer", (tmp_path / "out" / "log.txt").read_text())
    assert outcome.passed


@pytest.mark.parametrize("backend", ("nspawn", "qemu"))
def test_a_nixos_system_boots_its_own_init(backend: str, synthetic_nixos: Path, tmp_path: Path) -> None:
    def script(nix, host, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        nix.wait_for_console_text(f"{NIXOS_MARKER}: activated {synthetic_nixos}")
        assert nix.succeed("readlink /usr").strip().endswith("-herd-test-debian-base/usr")
        nix.wait_for_unit("web.service")
        host.wait_until_succeeds(FETCH.format("nix"))

    machines = {
        "nix": {
            "image": {"nixos": str(synthetic_nixos)},
            "units": {"web.service": SERVER},
            "services": ["web.service"],
        },
        "host": {},
    }
    run(Test(name=f"nixos-{backend}", machines=machines, script=script), backend, tmp_path)


def test_packages_over_a_debian_image(debian_root: Path, tmp_path: Path) -> None:
    def script(own, host, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        own.succeed("ping -c 1 -W 5 host")
        host.succeed("ping -c 1 -W 5 own")

    test = Test(
        name="debian-packages",
        machines={"own": {"image": "debian:bookworm", "packages": ["iputils-ping"]}, "host": {}},
        script=script,
    )
    assert not (debian_root / "usr/bin/ping").exists()  # the layer's, not the image's
    run(test, "nspawn", tmp_path)
