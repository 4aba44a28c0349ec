"""Machines with packages of their own over the host image: each has what it declares and nothing
another declares, packaged units are there but start only as the test says, and the host gets none
of it. The same test runs on the VM backends (tests/qemu/test_packages.py)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from herd import SpecError, Test
from herd.hooks.types import BackendInfo, Capability
from herd.host import imagecache, packagelayer
from herd.run.driver import Outcome
from tests.conftest import BROKER, CLIENTS, assert_nothing_left, installed

BROKER_CONFIG = "listener 1883\nallow_anonymous true\n"


def machines_with_packages_talk(run_test: Callable[[Test], Outcome], boot_timeout: float = 60.0) -> Outcome:
    """A broker machine with the broker's package, a client machine with the clients' package, and
    an idle machine with the broker's package and no service: the client talks to the broker."""

    def script(broker, client, idle, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        broker.wait_for_unit("mosquitto.service")
        broker.wait_for_open_port(1883)
        client.succeed("mosquitto_pub -h broker -t herd -m hello -r")
        assert client.succeed("mosquitto_sub -h broker -t herd -C 1 -W 30").strip() == "hello"
        assert broker.succeed("ps -o user= -C mosquitto").strip() == "mosquitto"  # the layer's user
        broker.fail("command -v mosquitto_pub")  # each machine has its own packages, no other's
        client.fail("command -v mosquitto")
        broker.fail("touch /usr/bin/herd-was-here")  # the layer is read-only, as the host's /usr
        idle.succeed("systemctl cat mosquitto.service")  # packaged, enabled by its package...
        idle.fail("systemctl is-active mosquitto.service")  # ...and not started: no service asked
        assert idle.succeed("getent shadow mosquitto").startswith("mosquitto:*:")  # no password to use

    machines = {
        "broker": {
            "packages": [BROKER],
            "services": ["mosquitto"],
            "files": {"/etc/mosquitto/conf.d/herd.conf": BROKER_CONFIG},
        },
        "client": {"packages": [CLIENTS]},
        "idle": {"packages": [BROKER]},
    }
    for fields in machines.values():
        fields["boot_timeout"] = boot_timeout
    outcome = run_test(Test(name="packages", machines=machines, script=script))
    assert outcome.passed, outcome.error
    assert not installed(BROKER) and shutil.which("mosquitto_pub") is None  # the host has none of it
    return outcome


def test_machines_with_different_packages_talk_to_each_other(
    apt_ready: None, run_test: Callable[[Test], Outcome], require: Callable[[Capability], None]
) -> None:
    require(Capability.SYSTEMD)
    machines_with_packages_talk(run_test)


def test_a_package_that_does_not_exist_fails_the_test_before_any_machine_boots(
    apt_ready: None, backend: BackendInfo, tmp_path: Path
) -> None:
    missing = "herd-no-such-package"
    test = Test(name="nopackage", machines={"m": {"packages": [missing]}}, script="m.start()")
    with pytest.raises(SpecError) as caught:
        test.run(backend=backend.name, output_dir=tmp_path / "out", terminal=None)
    assert caught.value.problems == [
        f"test 'nopackage', machine 'm', field 'packages': apt-get install {missing} failed: "
        f"E: Unable to locate package {missing}"
    ]
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "booted" not in log
    found = re.search(r"run ([a-z0-9]{5})", log)
    assert found is not None
    assert_nothing_left(found.group(1))
    name = f"{packagelayer.KIND}-{packagelayer.layer_key(packagelayer.host_base(), [missing])}"
    assert not list(imagecache.images_dir().glob(f"*{name}*"))  # nothing half-built either
