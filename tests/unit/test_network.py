"""Network planning: deterministic addresses and interface names, names per machine, each NIC
placed by the network's provider; and the check of the networks' providers."""

from __future__ import annotations

import re
import types

import pytest

from herd import HerdError, SpecError
from herd.declare.spec import TestSpec, parse_test
from herd.hooks.manager import Plugins
from herd.hooks.types import NetworkFeature, NetworkProviderInfo
from herd.network.plan import RunNetworks, capacity_problems
from herd.network.plan import plan as plan_with
from herd.network.providers import provider_problems
from herd.plugin import hookimpl

from .conftest import place


def plan(spec: TestSpec) -> RunNetworks:
    return plan_with(spec, place)


ROUTED = {
    "lan": {"subnet": "10.0.1.0/24"},
    "wan": {"ipv6": True},
}


def spec(machines: dict, networks: dict | None = None):  # type: ignore[no-untyped-def, type-arg]
    return parse_test("t", machines, "pass", None, networks)


def test_without_declarations_every_machine_is_on_the_default_network() -> None:
    planned = plan(spec({f"m{i}": {} for i in range(3)}))
    [network] = planned.networks
    assert (network.name, str(network.subnet), network.provider) == ("default", "192.168.1.0/24", "bridge")
    first, third = planned.boot_attachments("m0")[0], planned.boot_attachments("m2")[0]
    assert first.addresses == ("192.168.1.1/24",) and third.addresses == ("192.168.1.3/24",)
    assert first.guest_link == "eth0" and (first.bridge, first.host_link) == ("br-default", "m0-0")
    assert planned.address_of("m2") == "192.168.1.3"
    assert str(network.gateway) == "192.168.1.254"


def test_machines_join_the_networks_they_name_in_their_order() -> None:
    planned = plan(
        spec(
            {
                "router": {"networks": ["lan", "wan"]},
                "client": {"networks": {"lan": {"address": "10.0.1.50", "delay": 20}}},
                "other": {},
            },
            ROUTED,
        ),
    )
    assert [n.name for n in planned.networks] == ["default", "lan", "wan"]
    assert str(planned.network("wan").subnet) == "192.168.2.0/24"  # the first free one after default's
    assert str(planned.network("wan").subnet6).startswith("fd68:6572:6400:")
    router = planned.boot_attachments("router")
    assert [(a.network, a.guest_link) for a in router] == [("lan", "eth0"), ("wan", "eth1")]
    assert router[1].addresses == (
        "192.168.2.1/24",
        f"{planned.network('wan').subnet6.network_address + 1}/64",
    )
    assert planned.boot_attachments("client")[0].addresses == ("10.0.1.50/24",)
    assert planned.impairments["client"]["lan"].delay == 20
    # a network the machine may be connected to later has its NIC planned too, after its own
    later = planned.attachments["client"]["wan"]
    assert later.guest_link not in {"eth0"} and later.addresses[0] == "192.168.2.2/24"


def test_names_resolve_where_machines_share_a_network() -> None:
    planned = plan(
        spec(
            {"router": {"networks": ["lan", "wan"]}, "a": {"networks": ["lan"]}, "b": {"networks": ["wan"]}},
            ROUTED,
        ),
    )
    hosts_a = planned.hosts_file("a").splitlines()
    assert "10.0.1.1\trouter router.lan" in hosts_a and "10.0.1.2\ta a.lan" in hosts_a
    assert not any(" b" in line or "\tb." in line for line in hosts_a)  # b shares no network with a
    hosts_b = planned.hosts_file("b").splitlines()
    assert "192.168.1.1\trouter router.wan" in hosts_b  # no default network: wan gets the first subnet
    hosts_router = planned.hosts_file("router").splitlines()
    assert "10.0.1.1\trouter router.lan" in hosts_router and "192.168.1.1\trouter.wan" in hosts_router


def test_fixed_addresses_are_kept_and_others_step_around_them() -> None:
    planned = plan(
        spec(
            {"a": {}, "b": {"networks": {"lan": {"address": "10.0.1.1"}}}, "c": {"networks": ["lan"]}}, ROUTED
        ),
    )
    assert planned.attachments["b"]["lan"].addresses == ("10.0.1.1/24",)
    assert planned.attachments["a"]["lan"].addresses != ("10.0.1.1/24",)
    assert len({planned.attachments[m]["lan"].addresses for m in "abc"}) == 3


def test_a_large_test_fits_its_subnet_up_to_the_last_free_address() -> None:
    assert capacity_problems(spec({f"m{i}": {} for i in range(253)})) == []
    assert "do not fit network 'default'" in capacity_problems(spec({f"m{i}": {} for i in range(254)}))[0]


def test_a_small_ipv6_subnet_is_checked_for_room_like_an_ipv4_one() -> None:
    lan = {"lan": {"subnet6": "fd00::/126"}}
    crowded = spec({f"m{i}": {"networks": ["lan"]} for i in range(3)}, lan)
    assert capacity_problems(crowded) == ["test 't': 3 machines do not fit network 'lan' (fd00::/126)"]
    # two fit: the first and last addresses are nobody's, and herd's gateway takes no IPv6 address
    planned = plan(spec({"a": {"networks": ["lan"]}, "b": {"networks": ["lan"]}}, lan))
    assert [planned.attachments[m]["lan"].addresses[1] for m in "ab"] == ["fd00::1/126", "fd00::2/126"]


def test_automatic_subnets_overlap_no_declared_one() -> None:
    networks = {
        "auto": {"ipv6": True},
        "fixed": {"subnet": "192.168.1.0/24", "subnet6": "fd68:6572:6400:1::/64"},
    }
    planned = plan(spec({"m": {"networks": ["auto", "fixed"]}}, networks))
    auto, fixed = planned.network("auto"), planned.network("fixed")
    assert str(auto.subnet) == "192.168.2.0/24" and str(auto.subnet6) == "fd68:6572:6400:2::/64"
    assert auto.subnet6 is not None and fixed.subnet6 is not None
    assert not auto.subnet6.overlaps(fixed.subnet6)


@pytest.mark.parametrize(
    ("fixed", "field_name"),
    [({"subnet": "192.168.0.0/16"}, "subnet"), ({"subnet6": "fd68:6572:6400::/48"}, "subnet6")],
)
def test_declared_subnets_that_leave_no_automatic_one_free_are_a_problem(fixed, field_name) -> None:  # type: ignore[no-untyped-def]
    test = spec({"m": {"networks": ["big", "auto"]}}, {"big": fixed, "auto": {"ipv6": True}})
    assert capacity_problems(test) == [
        f"test 't': network 'auto': the declared subnets leave no automatic {field_name} free: declare one"
    ]


def test_the_address_of_a_machine_on_no_network_is_a_clear_error() -> None:
    planned = plan(spec({"a": {}, "loner": {"networks": []}}))
    with pytest.raises(HerdError, match="machine loner is on no network"):
        planned.address_of("loner")
    assert planned.address_of("loner", "default") == "192.168.1.2"  # planned, for `connect`
    with pytest.raises(HerdError, match=r"network 'wifi' is not one of the test's \(networks: default\)"):
        planned.address_of("a", "wifi")


def providers(*infos: NetworkProviderInfo) -> Plugins:
    """Plugins holding these network providers and no other (none is loaded from entry points:
    each named provider is found)."""
    plugin = types.ModuleType("providers")

    @hookimpl
    def herd_register_network_providers(register):  # type: ignore[no-untyped-def]
        for info in infos:
            register(info)

    plugin.herd_register_network_providers = herd_register_network_providers  # type: ignore[attr-defined]
    plugins = Plugins()
    plugins.register(plugin, "providers")
    return plugins


def no_netem(impairment) -> str | None:  # type: ignore[no-untyped-def]
    return "a delay or loss needs netem, which it lacks" if impairment.delay or impairment.loss else None


def test_every_network_names_an_installed_provider_and_the_default_is_bridge() -> None:
    test = spec({"a": {"networks": ["lan", "wan", "far"]}}, {"lan": {}, "wan": {"provider": "tunnel"},
                "far": {"provider": "tunnel"}})  # fmt: skip
    plugins = providers(NetworkProviderInfo("bridge", "bridges"), NetworkProviderInfo("other", "another"))
    assert [n.provider for n in plan(test).networks] == ["bridge", "tunnel", "tunnel"]
    [problem] = provider_problems(test, plugins)  # one for both networks
    found = re.match(
        r"test 't', networks 'wan', 'far': no network provider named 'tunnel' is installed "
        r"\(installed: ([^)]*)\); .* 'pip install herd-tunnel'$",
        problem,
    )
    assert found and {"bridge", "other"} <= set(found.group(1).split(", ")), problem
    assert provider_problems(spec({"a": {}}), plugins) == []


def test_an_impairment_or_forward_is_refused_where_its_provider_cannot_apply_it() -> None:
    plugins = providers(
        NetworkProviderInfo("bridge", "all", frozenset(NetworkFeature), impairment_problem=no_netem),
        NetworkProviderInfo("plain", "carries traffic, no more"),
    )
    networks = {"lan": {"provider": "plain"}}
    refused = spec(
        {
            "a": {"networks": {"default": {"delay": 20}}},
            "b": {"networks": {"default": {"rate": "1mbit"}}},
            "c": {"networks": {"lan": {"rate": "1mbit"}}, "forward_ports": {8080: 80}},
        },
        networks,
    )
    assert provider_problems(refused, plugins) == [
        "test 't', machine 'a', field 'networks': network 'default': a delay or loss needs netem, which it "
        "lacks",
        "test 't', machine 'c', field 'networks': network 'lan': its provider 'plain' cannot impair links",
        "test 't', machine 'c', field 'forward_ports': network 'lan': its provider 'plain' cannot forward "
        "ports",
    ]


@pytest.mark.parametrize(
    ("networks", "machines", "expected"),
    [
        ({"a": {"subnet": "10.0.0.0/16"}, "b": {"subnet": "10.0.5.0/24"}}, {"m": {}}, "overlaps network 'b'"),
        (
            {"lan": {"subnet": "10.0.1.0/24"}},
            {"m": {"networks": {"lan": {"address": "10.0.2.1"}}}},
            "is not a host address of 'lan'",
        ),
        (
            {"lan": {"subnet": "10.0.1.0/24"}},
            {"m": {"networks": {"lan": {"address": "10.0.1.254"}}}},
            "kept for herd's gateway",
        ),
        (
            {"lan": {"subnet": "10.0.1.0/24"}},
            {
                "m": {"networks": {"lan": {"address": "10.0.1.9"}}},
                "n": {"networks": {"lan": {"address": "10.0.1.9"}}},
            },
            "is also 'm''s",
        ),
        ({"lan": {}}, {"m": {"networks": {"lan": {"address": "10.0.1.9"}}}}, "give network 'lan' a subnet"),
        ({"lan": {}}, {"m": {"networks": ["wan"]}}, "network 'wan' is not declared (networks: default, lan)"),
        ({"lan": {}}, {"m": {"networks": {"lan": {"address6": "fd00::1"}}}}, "has no IPv6"),
        (
            None,
            {"m": {"networks": [], "forward_ports": {8080: 80}}},
            "on no network, so no port can be forwarded",
        ),
        (
            None,
            {"m": {"forward_ports": {8080: 80}}, "n": {"forward_ports": {8080: 81}}},
            "host port 8080 is forwarded to 'm' already",
        ),
        (None, {"m": {"forward_ports": {0: 80}}}, "is not a pair of TCP ports"),
        (None, {"m": {"networks": {"default": {"loss": 101}}}}, "loss must be at most 100"),
        (None, {"m": {"networks": {"default": {"jitter": 5}}}}, "jitter needs a delay"),
        (
            None,
            {"m": {"networks": {"default": {"delay": -1}}}},
            "delay must be a number of milliseconds >= 0",
        ),
        (None, {"m": {"networks": {"default": {"rate": "fast"}}}}, "rate must be bits per second"),
        ({"Bad_Name": {}}, {"m": {}}, "network name 'Bad_Name'"),
        ({"lan": {"provider": "No Such"}}, {"m": {}}, "provider must name a network provider"),
        ({"lan": {"colour": "red"}}, {"m": {}}, "expected a mapping with 'subnet', 'subnet6', 'ipv6' or"),
        ({"lan": {"subnet": "10.0.1.0/31"}}, {"m": {}}, "too small"),
        (
            {"lan": {"subnet6": "fd00::/64", "ipv6": False}},
            {"m": {}},
            "network 'lan': 'ipv6': False conflicts with 'subnet6', which gives the network IPv6",
        ),
    ],
)
def test_bad_network_declarations_are_refused_before_anything_starts(networks, machines, expected) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as caught:
        parse_test("t", machines, "pass", None, networks)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
