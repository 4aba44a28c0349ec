"""Network planning: deterministic addresses and MACs, link names that fit, hosts for every machine."""

from __future__ import annotations

from herd.network import DEFAULT_SUBNET, bridge_name, host_link_name, mac_address, plan
from herd.spec import parse_test


def machines(count: int):  # type: ignore[no-untyped-def]
    return parse_test("t", {f"m{i}": {} for i in range(count)}, "pass").machines


def test_every_machine_gets_an_address_a_mac_and_a_nic_on_the_default_network() -> None:
    planned = plan("abcde", machines(3))
    [network] = planned.networks
    assert network.subnet == DEFAULT_SUBNET and network.bridge == "herdabcdeb0"
    first, third = planned.attachments["m0"][0], planned.attachments["m2"][0]
    assert first.addresses == ("192.168.1.1/24",) and third.addresses == ("192.168.1.3/24",)
    assert first.guest_link == "eth0" and first.bridge == network.bridge
    assert first.mac == "02:68:64:00:00:01" and third.mac == "02:68:64:00:00:03"
    assert planned.address_of("m2") == "192.168.1.3"


def test_the_same_test_plans_the_same_way_in_every_run_but_for_link_names() -> None:
    one, two = plan("aaaaa", machines(2)), plan("bbbbb", machines(2))
    assert [a.addresses for a in one.attachments["m1"]] == [a.addresses for a in two.attachments["m1"]]
    assert one.attachments["m1"][0].host_link != two.attachments["m1"][0].host_link


def test_link_names_fit_the_kernel_limit_for_large_tests() -> None:
    planned = plan("zzzzz", machines(250))
    names = {a.host_link for attachments in planned.attachments.values() for a in attachments}
    assert len(names) == 250 and max(len(n) for n in names) <= 15
    assert len(host_link_name("zzzzz", 46655, 35)) == 15 and len(bridge_name("zzzzz", 35)) <= 15
    assert mac_address(0, 300) == "02:68:64:00:01:2c"


def test_hosts_file_names_every_machine() -> None:
    hosts = plan("abcde", machines(2)).hosts_file().splitlines()
    assert "127.0.0.1\tlocalhost" in hosts
    assert "192.168.1.1\tm0" in hosts and "192.168.1.2\tm1" in hosts
