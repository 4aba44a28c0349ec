"""A second network provider beside the bridge one, with no change to the core: `tunnel`
(tests/providers/tunnel.py), registered as a plugin of its own, makes a test's network `far` while
herd-bridge makes `default`. Machines reach each other on both; what a run asks of `far` goes to
`tunnel` alone; nothing either provider made outlives the run."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from herd import HerdError, SpecError, Test
from herd.hooks.manager import PLUGINS_GROUP, Plugins
from herd.hooks.types import BackendInfo, Capability
from herd.host.residue import leftovers
from herd.run.driver import Driver, Outcome, RunOptions
from tests.providers import tunnel

FAR = {"far": {"provider": "tunnel", "subnet": "10.0.7.0/24"}}


def with_the_tunnel() -> Plugins:
    """Every installed plugin, and `tunnel` beside them."""
    plugins = Plugins().load_all()
    plugins.register(tunnel, f"{PLUGINS_GROUP}:tunnel")
    return plugins


def run(test: Test, backend: BackendInfo, output: Path) -> Outcome:
    plugins = with_the_tunnel()
    options = RunOptions(backend=backend.name, output_dir=output, terminal=None)
    outcome = Driver(test.spec, test.source, options, plugins).run()
    assert leftovers(outcome.run_id, plugins) == []
    assert tunnel.links.link_names(f"{tunnel.PREFIX}{outcome.run_id}") == []
    return outcome


def sent_through(run_id: str, network: int) -> int:
    """Packets the tunnel's end at site a has sent to site b."""
    return int(
        Path(f"/sys/class/net/{tunnel.tunnel_end(run_id, network, 0)}/statistics/tx_packets").read_text()
    )


def far_site_knows(run_id: str, network: int, mac: str) -> bool:
    """Whether site b's tunnel end has been told where the MAC of a machine of site a lives (an
    entry of the tunnel's own, not one its bridge learnt from traffic)."""
    fdb = subprocess.run(
        ["bridge", "fdb", "show", "dev", tunnel.tunnel_end(run_id, network, 1)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return any(line.startswith(f"{mac} dst 127.0.0.1 ") for line in fdb.splitlines())


def test_machines_reach_each_other_through_the_tunnel_beside_a_bridge_network(
    backend: BackendInfo, tmp_path: Path
) -> None:
    def script(a, b, driver) -> None:  # type: ignore[no-untyped-def]
        driver.start_all()
        far = driver.networks.network("far")
        a_nic, b_nic = driver.networks.attachments["a"]["far"], driver.networks.attachments["b"]["far"]
        assert (a_nic.bridge, b_nic.bridge) == (tunnel.bridge(driver.run_id, far.index, 0),
                                                tunnel.bridge(driver.run_id, far.index, 1))  # fmt: skip
        before = sent_through(driver.run_id, far.index)
        a.succeed("ping -c 2 -W 5 b.far")
        assert sent_through(driver.run_id, far.index) > before  # across the sites, through the tunnel
        assert a.succeed("getent hosts b.far").split()[0] == "10.0.7.2"
        a.succeed("ping -c 1 -W 5 b.default")  # herd-bridge's network, beside it
        assert far_site_knows(driver.run_id, far.index, a_nic.mac)  # told when a's NIC came up
        b.block("far")
        a.fail("ping -c 1 -W 1 b.far")
        a.succeed("ping -c 1 -W 5 b.default")
        b.unblock("far")
        a.wait_until_succeeds("ping -c 1 -W 1 b.far", timeout=15)
        with pytest.raises(HerdError, match="network 'far': its provider 'tunnel' cannot impair links"):
            b.impair("far", rate="1mbit")
        with pytest.raises(HerdError, match="network 'far': its provider 'tunnel' cannot forward ports"):
            b.forward_port(0, 80, "far")
        b.impair("default", rate="100mbit")  # herd-bridge's can
        b.unimpair("default")

    test = Test(
        name="tunnel",
        networks=FAR,
        machines={"a": {"networks": ["far", "default"]}, "b": {"networks": ["far", "default"]}},
        script=script,
    )
    outcome = run(test, backend, tmp_path / "out")
    assert outcome.passed, outcome.error


def test_a_machine_plugged_into_the_tunnel_is_known_across_it_until_unplugged(
    backend: BackendInfo, require: Callable[[Capability], None], tmp_path: Path
) -> None:
    require(Capability.HOTPLUG)

    def script(a, b, driver) -> None:  # type: ignore[no-untyped-def]
        driver.start_all()
        far = driver.networks.network("far")
        mac = driver.networks.attachments["a"]["far"].mac
        assert not far_site_knows(driver.run_id, far.index, mac)
        a.connect("far")
        assert far_site_knows(driver.run_id, far.index, mac)
        b.succeed("ping -c 1 -W 5 a.far")
        a.disconnect("far")
        assert not far_site_knows(driver.run_id, far.index, mac)
        b.fail("ping -c 1 -W 1 10.0.7.1")

    test = Test(
        name="tunnel-hotplug",
        networks=FAR,
        machines={"a": {"networks": ["default"]}, "b": {"networks": ["far"]}},
        script=script,
    )
    outcome = run(test, backend, tmp_path / "out")
    assert outcome.passed, outcome.error


def test_a_network_naming_a_provider_that_is_not_installed_is_refused_before_anything_starts(
    backend: BackendInfo, tmp_path: Path
) -> None:
    test = Test(
        name="nowhere",
        networks={"far": {"provider": "nowhere"}},
        machines={"a": {"networks": ["far"]}},
        script="a.succeed('true')",
    )
    options = RunOptions(backend=backend.name, output_dir=tmp_path / "out", terminal=None)
    with pytest.raises(SpecError) as caught:
        Driver(test.spec, test.source, options, with_the_tunnel())
    found = re.search(
        r"^test 'nowhere', network 'far': no network provider named 'nowhere' is installed "
        r"\(installed: ([^)]*)\); .*'pip install herd-nowhere'$",
        str(caught.value),
    )
    assert found and {"bridge", "tunnel"} <= set(found.group(1).split(", ")), caught.value
    assert not (tmp_path / "out").exists()
