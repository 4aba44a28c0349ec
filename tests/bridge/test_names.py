"""The bridge provider's names and MACs: deterministic, unique, within the kernel's 15 characters."""

from __future__ import annotations

from herd.declare.spec import parse_test
from herd.network.plan import plan
from herd_bridge import herd_network_attachment, names


def test_a_machines_nic_is_named_after_the_run_the_network_and_the_machine() -> None:
    spec = parse_test("t", {"m0": {}, "m1": {"networks": ["default", "lan"]}}, "pass", None, {"lan": {}})
    planned = plan(spec, lambda network, nic: herd_network_attachment("abcde", network, nic))
    first, second = planned.attachments["m0"]["default"], planned.attachments["m1"]["lan"]
    assert (first.bridge, first.host_link, first.mac) == ("herdabcdeb0", "herdabcdem0n0", "02:68:64:00:00:01")
    assert (second.bridge, second.host_link, second.mac) == (
        "herdabcdeb1",
        "herdabcdem1n1",
        "02:68:64:01:00:02",
    )
    assert (second.guest_link, second.addresses) == ("eth1", ("192.168.2.2/24",))  # as the core planned


def test_link_names_fit_the_kernel_limit_for_the_largest_tests() -> None:
    assert len(names.host_link_name("zzzzz", 46655, 35)) == 15
    assert len(names.bridge_name("zzzzz", 35)) <= 15 and len(names.gateway_link_name("zzzzz", 35)) <= 15
    spec = parse_test("t", {f"m{i}": {} for i in range(250)}, "pass")
    planned = plan(spec, lambda network, nic: herd_network_attachment("zzzzz", network, nic))
    links = {a.host_link for machine in planned.attachments.values() for a in machine.values()}
    assert len(links) == 250 and max(len(n) for n in links) <= 15
    assert names.mac_address(0, 300) == "02:68:64:00:01:2c"
    assert names.mac_address(3, names.GATEWAY_MAC_INDEX) == "02:68:64:03:ff:ff"


def test_run_ids_are_read_back_from_the_names() -> None:
    assert names.run_ids_in(["herdabcdeb0", "herdabcdem1n0", "herdvwxyzg0", "eth0"], "herd") == {
        "abcde",
        "vwxyz",
    }
