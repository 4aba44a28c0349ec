"""nixpkgs nixos/tests/nsd.nix, restated for herd.

Source: nixpkgs, nixos/tests/nsd.nix at commit cd455e067469bc4aab35ea14f00142ff8593053e.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: one network, nixpkgs' VLAN 1, with the addresses nixpkgs gives: `server` 192.168.0.1
and dead:beef::1, `clientv4` 192.168.0.2, `clientv6` dead:beef::2. `server` runs Debian's
`nsd.service` serving the test's zones (the root zone among them, as `rootServer = true`); each
client's resolver is the server, by the address family it is named after.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

NSD_CONF = """\
server:
    log-only-syslog: yes
    zonesdir: "/etc/nsd/zones"
    database: ""
    username: nsd

remote-control:
    control-enable: no

zone:
    name: "example.com."
    zonefile: "example.com.zone"

zone:
    name: "deleg.example.com."
    zonefile: "deleg.example.com.zone"

zone:
    name: "."
    zonefile: "root.zone"
"""

ZONES = {
    "example.com.zone": """\
@ SOA ns.example.com noc.example.com 666 7200 3600 1209600 3600
ipv4 A 1.2.3.4
ipv6 AAAA abcd::eeff
deleg NS ns.example.com
ns A 192.168.0.1
ns AAAA dead:beef::1
""",
    "deleg.example.com.zone": """\
@ SOA ns.example.com noc.example.com 666 7200 3600 1209600 3600
@ A 9.8.7.6
@ AAAA fedc::bbaa
""",
    "root.zone": """\
@ SOA ns.example.com noc.example.com 666 7200 3600 1209600 3600
root A 1.8.7.4
root AAAA acbd::4
""",
}

test = herd.Test(
    name="nixos-nsd",
    networks={"vlan1": {"subnet": "192.168.0.0/24", "subnet6": "dead:beef::/64"}},
    machines={
        "clientv4": {
            "networks": {"vlan1": {"address": "192.168.0.2"}},
            "packages": ["bind9-host"],
            "files": {"/etc/resolv.conf": "nameserver 192.168.0.1\n"},
        },
        "clientv6": {
            "networks": {"vlan1": {"address6": "dead:beef::2"}},
            "packages": ["bind9-host"],
            "files": {"/etc/resolv.conf": "nameserver dead:beef::1\n"},
        },
        "server": {
            "networks": {"vlan1": {"address": "192.168.0.1", "address6": "dead:beef::1"}},
            "packages": ["nsd"],
            "services": ["nsd"],
            "files": {
                "/etc/nsd/nsd.conf": NSD_CONF,
                **{f"/etc/nsd/zones/{name}": text for name, text in ZONES.items()},
            },
        },
    },
    script=r"""
start_all()

clientv4.wait_for_unit("network.target")
clientv6.wait_for_unit("network.target")
server.wait_for_unit("nsd.service")


def assert_host(type, rr, query, expected):
    self = clientv4 if type == 4 else clientv6
    out = self.succeed(f"host -{type} -t {rr} {query}").rstrip()
    self.log(f"output: {out}")
    assert re.search(
        expected, out
    ), f"DNS IPv{type} query on {query} gave '{out}' instead of '{expected}'"


for ipv in 4, 6:
    with subtest(f"IPv{ipv}"):
        assert_host(ipv, "a", "example.com", "has no [^ ]+ record")
        assert_host(ipv, "aaaa", "example.com", "has no [^ ]+ record")

        assert_host(ipv, "soa", "example.com", "SOA.*?noc\.example\.com")
        assert_host(ipv, "a", "ipv4.example.com", "address 1.2.3.4$")
        assert_host(ipv, "aaaa", "ipv6.example.com", "address abcd::eeff$")

        assert_host(ipv, "a", "deleg.example.com", "address 9.8.7.6$")
        assert_host(ipv, "aaaa", "deleg.example.com", "address fedc::bbaa$")

        assert_host(ipv, "a", "root", "address 1.8.7.4$")
        assert_host(ipv, "aaaa", "root", "address acbd::4$")
""",
    timeout=300,
)

ON_QEMU = False
