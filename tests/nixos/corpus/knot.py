"""nixpkgs nixos/tests/knot.nix, restated for herd.

Source: nixpkgs, nixos/tests/knot.nix at commit 014970bc17d6cb7718737041e1c4a8a10ef56503.
The script is nixpkgs' testScript, verbatim but for the deviation below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: one network, nixpkgs' VLAN 1, with nixpkgs' addresses: `master` 192.168.0.1 and fd00::1,
`slave` 192.168.0.2 and fd00::2, `client` 192.168.0.3 and fd00::3. `master` and `slave` run
Debian's `knot.service` with nixpkgs' configuration (the master signs the zones and notifies the
slave, which transfers them); the databases nixpkgs moves below /var/lib/knot with `journal-db`,
`kasp-db` and `timer-db` are there by Knot 3's `database.storage`. `client` has Debian's khost.

Deviations from nixpkgs' script:
- `"${master4}", "${master6}", "${slave4}", "${slave6}"` (Nix values read from the nodes'
  configurations) become the addresses they evaluate to: "192.168.0.1", "fd00::1",
  "192.168.0.2", "fd00::2".
"""

from __future__ import annotations

import herd

EXAMPLE_ZONE = """\
@ SOA ns.example.com. noc.example.com. 2019031301 86400 7200 3600000 172800
@       NS      ns1
@       NS      ns2
ns1     A       192.168.0.1
ns1     AAAA    fd00::1
ns2     A       192.168.0.2
ns2     AAAA    fd00::2
www     A       192.0.2.1
www     AAAA    2001:DB8::1
sub     NS      ns.example.com.
"""

DELEGATED_ZONE = """\
@ SOA ns.example.com. noc.example.com. 2019031301 86400 7200 3600000 172800
@       NS      ns1.example.com.
@       NS      ns2.example.com.
@       A       192.0.2.2
@       AAAA    2001:DB8::2
"""

COMMON = """\
server:
    listen: 0.0.0.0@53
    listen: ::@53

database:
    storage: /var/lib/knot

log:
  - target: syslog
    any: info
"""

ZONES = """
zone:
  - domain: example.com
    file: example.com.zone

  - domain: sub.example.com
    file: sub.example.com.zone
"""

MASTER_CONF = (
    COMMON
    + """
acl:
  - id: slave_acl
    address: 192.168.0.2
    action: transfer

remote:
  - id: slave
    address: 192.168.0.2@53

template:
  - id: default
    storage: /etc/knot/zones
    notify: [slave]
    acl: [slave_acl]
    dnssec-signing: on
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
"""
    + ZONES
)

SLAVE_CONF = (
    COMMON
    + """
acl:
  - id: notify_from_master
    address: 192.168.0.1
    action: notify

remote:
  - id: master
    address: 192.168.0.1@53

template:
  - id: default
    master: master
    acl: [notify_from_master]
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
"""
    + ZONES
)

test = herd.Test(
    name="nixos-knot",
    networks={"vlan1": {"subnet": "192.168.0.0/24", "subnet6": "fd00::/64"}},
    machines={
        "master": {
            "networks": {"vlan1": {"address": "192.168.0.1", "address6": "fd00::1"}},
            "packages": ["knot"],
            "services": ["knot"],
            "files": {
                "/etc/knot/knot.conf": MASTER_CONF,
                "/etc/knot/zones/example.com.zone": EXAMPLE_ZONE,
                "/etc/knot/zones/sub.example.com.zone": DELEGATED_ZONE,
            },
        },
        "slave": {
            "networks": {"vlan1": {"address": "192.168.0.2", "address6": "fd00::2"}},
            "packages": ["knot"],
            "services": ["knot"],
            "files": {"/etc/knot/knot.conf": SLAVE_CONF},
        },
        "client": {
            "networks": {"vlan1": {"address": "192.168.0.3", "address6": "fd00::3"}},
            "packages": ["knot-host"],
        },
    },
    script=r"""
import re

start_all()

client.wait_for_unit("network.target")
master.wait_for_unit("knot.service")
slave.wait_for_unit("knot.service")


def test(host, query_type, query, pattern):
    out = client.succeed(f"khost -t {query_type} {query} {host}").strip()
    client.log(f"{host} replied with: {out}")
    assert re.search(pattern, out), f'Did not match "{pattern}"'


for host in ("192.168.0.1", "fd00::1", "192.168.0.2", "fd00::2"):
    with subtest(f"Interrogate {host}"):
        test(host, "SOA", "example.com", r"start of authority.*noc\.example\.com\.")
        test(host, "A", "example.com", r"has no [^ ]+ record")
        test(host, "AAAA", "example.com", r"has no [^ ]+ record")

        test(host, "A", "www.example.com", r"address 192.0.2.1$")
        test(host, "AAAA", "www.example.com", r"address 2001:db8::1$")

        test(host, "NS", "sub.example.com", r"nameserver is ns\d\.example\.com.$")
        test(host, "A", "sub.example.com", r"address 192.0.2.2$")
        test(host, "AAAA", "sub.example.com", r"address 2001:db8::2$")

        test(host, "RRSIG", "www.example.com", r"RR set signature is")
        test(host, "DNSKEY", "example.com", r"DNSSEC key is")
""",
    timeout=300,
)

ON_QEMU = False
