"""Machines of a local image a user names (the `image` option) rather than of the host's OS.

The image is a Debian made here with debootstrap (from Debian's packages; nothing comes from a
registry) and imported into the engine once per host, with a marker file the host lacks and a
unit that the image enables where the host has no dependency directory of that name.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import docker
import pytest

from herd import MachineError, SpecError, Test
from herd.run.driver import Outcome
from tests.conftest import run_and_check

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="boots real machines: needs root")
IMAGE = "herd-test/debian-systemd:bookworm"
MIRROR = "http://deb.debian.org/debian"
MARKER = "usr/share/herd-test-image"
ENABLED_UNIT = "herd-test-enabled.service"
ENABLED_BY = "basic.target.wants"  # a dependency directory the host's /etc does not have


@pytest.fixture(scope="module")
def image() -> str:
    engine = docker.from_env()
    try:
        engine.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        assert not Path("/etc/systemd/system", ENABLED_BY).exists()
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory) / "root"
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,iputils-ping",
                 "bookworm", str(root), MIRROR],
                check=True,
                capture_output=True,
            )  # fmt: skip
            (root / MARKER).write_text("herd's test image\n")
            units = root / "etc" / "systemd" / "system"
            (units / ENABLED_UNIT).write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
            (units / ENABLED_BY).mkdir()
            (units / ENABLED_BY / ENABLED_UNIT).symlink_to(f"../{ENABLED_UNIT}")
            tarball = Path(directory) / "root.tar"
            subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
            repository, tag = IMAGE.split(":")
            engine.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    return IMAGE


@pytest.fixture
def run(tmp_path: Path) -> Callable[[Test], Outcome]:
    return partial(run_and_check, backend="docker", output_dir=tmp_path / "out")


def test_a_machine_boots_the_image_and_shares_a_network_with_the_host_os(
    run: Callable[[Test], Outcome], image: str
) -> None:
    def script(own, host, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        own.succeed(f"test -f /{MARKER}")
        host.fail(f"test -e /{MARKER}")
        own.succeed("ping -c 1 -W 5 host")
        host.succeed("ping -c 1 -W 5 own")
        own.wait_for_unit("web.service")
        assert own.get_unit_property(ENABLED_UNIT, "ActiveState") == "inactive"  # herd.target only
        own.succeed("echo kept > /var/lib/herd-kept")
        own.shutdown()
        assert own.succeed("cat /var/lib/herd-kept") == "kept\n"  # its layers outlive a reboot

    web = "[Service]\nExecStart=/bin/sleep infinity\n"
    test = Test(
        name="image",
        machines={"own": {"options": {"image": image}, "units": {"web.service": web}}, "host": {}},
        script=script,
    )
    outcome = run(test)
    assert outcome.passed, outcome.error


def test_an_image_the_engine_lacks_is_refused_not_pulled(run: Callable[[Test], Outcome]) -> None:
    test = Test(
        name="absent", machines={"m": {"options": {"image": "herd-test/absent:1"}}}, script="start_all()"
    )
    outcome = run(test)
    assert isinstance(outcome.error, MachineError)
    assert "machine m cannot start: the Docker engine has no image 'herd-test/absent:1'" in str(outcome.error)
    assert "herd never pulls one" in str(outcome.error)


def test_options_are_checked_before_anything_starts() -> None:
    test = Test(
        name="opts", machines={"a": {"backend": "docker", "options": {"colour": 1, "image": 3}}}, script=""
    )
    with pytest.raises(SpecError) as raised:
        test.run(terminal=None)
    message = str(raised.value)
    assert "field 'options': unknown option 'colour'; docker options: image" in message
    assert "field 'options': image: expected the name of a local image, got 3" in message
