"""nixpkgs nixos/tests/dnsdist.nix, restated for herd.

Source: nixpkgs, nixos/tests/dnsdist.nix at commit 03a362fe87d4d19a45525bc0adab2f17a562f99a.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` runs BIND as NixOS's `bind.service` with the test's root zone, and Debian's
`dnsdist.service` listening on port 5353 in front of it.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

BIND_UNIT = """\
[Unit]
Description=BIND domain name server, as NixOS names it
After=network.target

[Service]
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
"""

ROOT_ZONE = """\
$TTL 3600
. IN SOA ns.example.org. admin.example.org. ( 1 3h 1h 1w 1d )
. IN NS ns.example.org.

ns.example.org. IN A    192.168.0.1
ns.example.org. IN AAAA abcd::1

1.0.168.192.in-addr.arpa IN PTR ns.example.org.
"""

DNSDIST_CONF = """\
setLocal("0.0.0.0:5353")
newServer({address="127.0.0.1:53", name="local-bind"})
"""

test = herd.Test(
    name="nixos-dnsdist",
    machines={
        "machine": {
            "packages": ["bind9", "bind9-dnsutils", "dnsdist"],
            "units": {"bind.service": BIND_UNIT},
            "services": ["dnsdist"],
            "files": {
                "/etc/bind/corpus.conf": NAMED_CONF,
                "/etc/bind/corpus/root.zone": ROOT_ZONE,
                "/etc/dnsdist/dnsdist.conf": DNSDIST_CONF,
            },
        }
    },
    script="""
machine.wait_for_unit("bind.service")
machine.wait_for_open_port(53)
machine.succeed("dig @127.0.0.1 +short -x 192.168.0.1 | grep -qF ns.example.org")

machine.wait_for_unit("dnsdist.service")
machine.wait_for_open_port(5353)
machine.succeed("dig @127.0.0.1 -p 5353 +short -x 192.168.0.1 | grep -qF ns.example.org")
""",
    timeout=300,
)

ON_QEMU = False
