"""nixpkgs nixos/tests/tinyproxy.nix, restated for herd.

Source: nixpkgs, nixos/tests/tinyproxy.nix at commit 3591a49f439a7f376141001f968573c3d4034b72.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` runs Debian's `tinyproxy.service`, configured as the test's NixOS module was
(`Listen 127.0.0.1`, `Port 8080`), and reverse-only with one path that nothing asks for. Debian
builds tinyproxy with transparent proxying, which makes the script's `curl http://localhost:8080`
a request the proxy forwards to itself; its loop guard's error page then reaches curl or not, by a
race (about one run in ten failed). nixpkgs' build has no transparent proxying and answers that
request with an error page at once; reverse-only without a matching path does the same here.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

TINYPROXY_CONF = """\
User tinyproxy
Group tinyproxy
Listen 127.0.0.1
Port 8080
Timeout 600
DefaultErrorFile "/usr/share/tinyproxy/default.html"
StatFile "/usr/share/tinyproxy/stats.html"
Syslog On
LogLevel Info
MaxClients 100
Allow 127.0.0.1
Allow ::1
ViaProxyName "tinyproxy"
ReversePath "/herd-unused/" "http://127.0.0.1:9/"
ReverseOnly Yes
"""

test = herd.Test(
    name="nixos-tinyproxy",
    machines={
        "machine": {
            "packages": ["curl", "tinyproxy"],
            "services": ["tinyproxy"],
            "files": {"/etc/tinyproxy/tinyproxy.conf": TINYPROXY_CONF},
        }
    },
    script="""
machine.wait_for_unit("tinyproxy.service")
machine.wait_for_open_port(8080)

machine.succeed('curl -s http://localhost:8080 |grep -i tinyproxy')
""",
    timeout=300,
)

ON_QEMU = False
