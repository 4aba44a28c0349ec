"""Several networks, names, cutting and impairing links, port forwards, hot-plug, parallel runs."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from herd import LinkError, SpecError, Test
from herd.hooks.types import BackendInfo, Capability
from herd.linux import links
from tests.conftest import ROOT, assert_nothing_left

ROUTED = {"lan": {"subnet": "10.0.1.0/24"}, "wan": {"subnet": "10.0.2.0/24", "ipv6": True}}
SERVE = "nohup python3 -m http.server {port} --directory /srv >/dev/null 2>&1 &"


def netem_available() -> bool:
    """Whether this kernel can delay and drop packets (sch_netem)."""
    add = subprocess.run(
        ["ip", "link", "add", "herdprobe0", "type", "veth", "peer", "herdprobe1"], check=False
    )
    if add.returncode != 0:
        return False
    try:
        return subprocess.run(["tc", "qdisc", "add", "dev", "herdprobe0", "root", "netem", "delay", "1ms"],
                              capture_output=True, check=False).returncode == 0  # fmt: skip
    finally:
        subprocess.run(["ip", "link", "del", "herdprobe0"], check=False)


needs_netem = pytest.mark.skipif(
    not netem_available(),
    reason="this kernel has no netem (CONFIG_NET_SCH_NETEM): it cannot delay or drop packets",
)


def qdiscs(link: str) -> str:
    """What `tc` says shapes a link on the host."""
    return subprocess.run(["tc", "qdisc", "show", "dev", link], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def rtt_ms(machine, target: str) -> float:  # type: ignore[no-untyped-def]
    output = machine.succeed(f"ping -c 3 -i 0.2 -W 5 {target}")
    return float(re.search(r"= [\d.]+/([\d.]+)/", output).group(1))  # type: ignore[union-attr]


def test_machines_on_several_networks_reach_only_what_they_share(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(router, client, server, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        client.succeed("ping -c 1 -W 5 router", "ping -c 1 -W 5 router.lan")
        server.succeed("ping -c 1 -W 5 router", "ping -c 1 -W 5 router.wan")
        assert server.succeed("getent ahostsv4 router").split()[0] == "10.0.2.1"
        assert client.succeed("getent ahostsv4 router").split()[0] == "10.0.1.1"
        client.fail("getent hosts server")  # they share no network, so no name
        client.fail("ping -c 1 -W 1 10.0.2.3")  # and no route: herd routes nothing
        server.succeed("ping -6 -c 1 -W 5 router.wan")  # over IPv6: wan has it
        assert server.succeed("getent ahostsv6 router.wan").startswith("fd68:6572:6400:")
        assert client.succeed("ip -4 -o addr show eth0").split()[3] == "10.0.1.50/24"
        assert router.succeed("ip -o link show eth1").split()[1].startswith("eth1@")

    test = Test(
        name="routed",
        networks=ROUTED,
        machines={
            "router": {"networks": ["lan", "wan"]},
            "client": {"networks": {"lan": {"address": "10.0.1.50"}}},
            "server": {"networks": ["wan"]},
        },
        script=script,
    )
    outcome = run_test(test)
    assert outcome.passed, outcome.error


def test_block_cuts_a_machine_off_and_unblock_brings_it_back(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(a, b, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        a.succeed("ping -c 1 -W 5 b")
        b.block()
        a.fail("ping -c 1 -W 1 b")
        b.unblock()
        a.wait_until_succeeds("ping -c 1 -W 1 b", timeout=15)
        b.block("default")
        b.fail("ping -c 1 -W 1 a")
        b.unblock("default")

    assert run_test(Test(name="block", machines={"a": {}, "b": {}}, script=script)).passed


def test_a_rate_limit_bounds_what_a_machine_receives(run_test: Callable) -> None:  # type: ignore[type-arg]
    fetch = (
        "python3 -c 'import urllib.request, time; started = time.time(); "
        'urllib.request.urlopen("http://server:8000/blob").read(); print(time.time() - started)\''
    )

    def script(server, client, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        server.succeed("head -c 1000000 /dev/zero > /srv/blob", SERVE.format(port=8000))
        server.wait_for_open_port(8000, timeout=30)
        fast = float(client.succeed(fetch))
        client.impair(rate="2mbit")  # 250 kB/s: a megabyte takes 4 s
        slow = float(client.succeed(fetch))
        client.unimpair()
        again = float(client.succeed(fetch))
        assert fast < 1.0 and again < 1.0, (fast, again)
        assert 3.0 < slow < 8.0, slow

    assert run_test(Test(name="rate", machines={"server": {}, "client": {}}, script=script)).passed


@needs_netem
def test_delay_and_loss_are_measured_and_removed(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(a, b, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        b.impair(delay=100)
        assert rtt_ms(a, "b") >= 100
        b.unimpair()
        assert rtt_ms(a, "b") < 5
        b.impair(loss=100)
        a.fail("ping -c 2 -W 1 b")
        b.unimpair()
        a.succeed("ping -c 1 -W 5 b")

    assert run_test(Test(name="netem", machines={"a": {}, "b": {}}, script=script)).passed


@needs_netem
def test_a_declared_impairment_applies_from_boot(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(a, b, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        assert rtt_ms(a, "b") >= 50

    test = Test(
        name="declared", machines={"a": {}, "b": {"networks": {"default": {"delay": 50}}}}, script=script
    )
    assert run_test(test).passed


def test_without_netem_delay_is_refused_clearly(run_test: Callable) -> None:  # type: ignore[type-arg]
    if netem_available():
        pytest.skip("this kernel has netem")

    def script(a) -> None:  # type: ignore[no-untyped-def]
        a.impair(delay=10)

    outcome = run_test(Test(name="nonetem", machines={"a": {}}, script=script))
    assert isinstance(outcome.error, LinkError), repr(outcome.error)
    assert "no netem queueing discipline (CONFIG_NET_SCH_NETEM)" in str(outcome.error)


def test_without_netem_a_declared_delay_is_refused_before_any_machine_boots(
    backend: BackendInfo, tmp_path: Path
) -> None:
    if links.netem_available() is not False:
        pytest.skip("this kernel has netem, or its configuration does not say (see `herd doctor`)")
    test = Test(
        name="declared-nonetem",
        machines={"a": {}, "b": {"networks": {"default": {"delay": 50}}}},
        script="start_all()",
    )
    expected = "machine 'b', field 'networks': network 'default': a delay or loss needs the kernel's netem"
    with pytest.raises(SpecError, match=expected):
        test.run(backend=backend.name, output_dir=tmp_path / "out", terminal=None)
    assert not (tmp_path / "out").exists()  # refused before the run began: no output, machine or link


def test_a_forwarded_port_reaches_a_service_from_the_host(run_test: Callable) -> None:  # type: ignore[type-arg]
    def script(web, other, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        web.succeed(SERVE.format(port=80))
        web.wait_for_open_port(80, timeout=30)
        with urllib.request.urlopen("http://127.0.0.1:18080/page", timeout=10) as response:
            assert response.read() == b"the page\n"
        other.succeed(SERVE.format(port=81))
        other.wait_for_open_port(81, timeout=30)
        other.forward_port(18081, 81)
        with urllib.request.urlopen("http://127.0.0.1:18081/page", timeout=10) as response:
            assert response.read() == b"other page\n"
        chosen = other.forward_port(0, 81)  # a free port, for tests that run side by side
        assert chosen not in (0, 18080, 18081)
        with urllib.request.urlopen(f"http://127.0.0.1:{chosen}/page", timeout=10) as response:
            assert response.read() == b"other page\n"

    test = Test(
        name="forward",
        machines={
            "web": {"forward_ports": {18080: 80}, "files": {"/srv/page": "the page\n"}},
            "other": {"files": {"/srv/page": "other page\n"}},
        },
        script=script,
    )
    assert run_test(test).passed
    with pytest.raises(OSError):  # the forward ended with the run
        urllib.request.urlopen("http://127.0.0.1:18080/page", timeout=2)


def test_machines_can_be_plugged_in_and_out(run_test: Callable, require: Callable) -> None:  # type: ignore[type-arg]
    require(Capability.HOTPLUG)

    def script(laptop, office, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        laptop.fail("getent hosts office")
        laptop.connect("wifi")
        laptop.succeed("ping -c 1 -W 5 office", "ping -c 1 -W 5 office.wifi")
        office.succeed("ping -c 1 -W 5 laptop")
        laptop.disconnect("wifi")
        office.fail("ping -c 1 -W 1 10.0.9.1")
        laptop.connect("wifi")  # and again, on the same NIC name and address
        office.succeed("ping -c 1 -W 5 laptop.wifi")

    test = Test(
        name="hotplug",
        networks={"home": {}, "wifi": {"subnet": "10.0.9.0/24"}},
        machines={"laptop": {"networks": ["home"]}, "office": {"networks": ["wifi"]}},
        script=script,
    )
    outcome = run_test(test)
    assert outcome.passed, outcome.error


def test_a_reconnected_machine_is_still_blocked_and_impaired(run_test: Callable, require: Callable) -> None:  # type: ignore[type-arg]
    require(Capability.HOTPLUG)

    def script(laptop, office, driver, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        link = driver.networks.attachments["laptop"]["wifi"].host_link
        laptop.connect("wifi")
        office.succeed("ping -c 1 -W 5 laptop.wifi")
        laptop.block("wifi")
        laptop.impair("wifi", rate="2mbit")
        laptop.disconnect("wifi")
        laptop.connect("wifi")  # its link is new: herd applies the block and impairment again
        assert "tbf" in qdiscs(link)
        office.fail("ping -c 1 -W 1 laptop.wifi")
        laptop.unblock("wifi")
        laptop.unimpair("wifi")
        assert "tbf" not in qdiscs(link)
        office.wait_until_succeeds("ping -c 1 -W 1 laptop.wifi", timeout=15)

    test = Test(
        name="reconnect",
        networks={"home": {}, "wifi": {"subnet": "10.0.9.0/24"}},
        machines={"laptop": {"networks": ["home"]}, "office": {"networks": ["wifi"]}},
        script=script,
    )
    outcome = run_test(test)
    assert outcome.passed, outcome.error


def test_two_runs_of_the_same_test_at_once_both_pass(backend: BackendInfo, tmp_path: Path) -> None:
    herd = str(Path(sys.executable).with_name("herd"))
    runs = [
        subprocess.Popen(
            [
                herd,
                "run",
                str(ROOT / "examples" / "ping.py"),
                "--backend",
                backend.name,
                "-o",
                str(tmp_path / str(n)),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs if run.stderr]  # type: ignore[union-attr]
    ids = set()
    for status, stderr in results:
        assert status == 0, stderr
        ids.add(re.search(r"run ([a-z0-9]{5})", stderr).group(1))  # type: ignore[union-attr]
    assert len(ids) == 2
    for run_id in ids:
        assert_nothing_left(run_id)
