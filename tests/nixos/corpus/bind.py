"""nixpkgs nixos/tests/bind.nix, restated for herd.

Source: nixpkgs, nixos/tests/bind.nix at commit 087cff1f81a6e7efd8e4f4317a8ecf637d0cdef1.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` runs BIND as NixOS's `bind.service`, with the test's zones written out as zone
files (nixpkgs' module generates them from its `records`).

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

BIND_UNIT = """\
[Unit]
Description=BIND domain name server, as NixOS names it
After=network.target

[Service]
ExecStartPre=/usr/bin/named-checkconf -z /etc/bind/corpus.conf
ExecStart=/usr/sbin/named -f -u bind -c /etc/bind/corpus.conf
"""

NAMED_CONF = """\
options {
  directory "/var/cache/bind";
  pid-file none;
  listen-on { any; };
  listen-on-v6 { any; };
  allow-query { any; };
  empty-zones-enable no;
};
zone "." { type master; file "/etc/bind/corpus/root.zone"; };
zone "minimal" { type master; file "/etc/bind/corpus/minimal.zone"; };
zone "common" { type master; file "/etc/bind/corpus/common.zone"; };
zone "maxconf" { type master; file "/etc/bind/corpus/maxconf.zone"; };
"""

ROOT_ZONE = """\
$TTL 3600
. IN SOA ns.example.org. admin.example.org. ( 1 3h 1h 1w 1d )
. IN NS ns.example.org.

ns.example.org. IN A    192.168.0.1
ns.example.org. IN AAAA abcd::1

1.0.168.192.in-addr.arpa IN PTR ns.example.org.
"""


def zone(soa: str, records: str) -> str:
    return f"$TTL 1D\n@ IN SOA {soa}\n@ IN NS ns\n{records}"


test = herd.Test(
    name="nixos-bind",
    machines={
        "machine": {
            "packages": ["bind9", "bind9-host"],
            "units": {"bind.service": BIND_UNIT},
            "files": {
                "/etc/bind/corpus.conf": NAMED_CONF,
                "/etc/bind/corpus/root.zone": ROOT_ZONE,
                "/etc/bind/corpus/minimal.zone": zone(
                    "ns.minimal. admin.minimal. ( 1 3h 1h 1w 1d )", "ns IN A 192.168.1.1\n"
                ),
                "/etc/bind/corpus/common.zone": zone(
                    "ns.common. admin.common. ( 12 3h 1h 1w 1d )",
                    "ns IN A 192.168.1.1\nwebserver IN A 192.168.1.1\n",
                ),
                "/etc/bind/corpus/maxconf.zone": zone(
                    "ns1.maxconf. admin.maxconf. ( 1 3H 1H 1W 1D )",
                    "ns1 IN A 192.168.1.1\nns 3H IN A 192.168.1.1\n",
                ),
            },
        }
    },
    script="""
machine.wait_for_unit("bind.service")
machine.wait_for_open_port(53)
machine.succeed("host 192.168.0.1 127.0.0.1")

machine.succeed("host ns.example.org 127.0.0.1")
machine.fail("host notfound.example.org 127.0.0.1")

machine.succeed("host ns.common 127.0.0.1")
machine.succeed("host webserver.common 127.0.0.1")
machine.fail("host notfound.common 127.0.0.1")

machine.succeed("host ns.maxconf 127.0.0.1")

machine.succeed("host webserver.common 127.0.0.1")
""",
    timeout=300,
)

ON_QEMU = True
