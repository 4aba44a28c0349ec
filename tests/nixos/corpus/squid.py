"""nixpkgs nixos/tests/squid.nix, restated for herd.

Source: nixpkgs, nixos/tests/squid.nix at commit 3d4e8c3166f5a3060b97a8710c1041914f22aa06.
The script is nixpkgs' testScript, verbatim but for the deviations below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: two networks, as nixpkgs' VLANs 1 (internal) and 2 (external), with nixpkgs' subnets:
`client` on vlan1 (192.168.1.1), `proxy` on both (192.168.1.2, 192.168.2.2), `server` on vlan2
(192.168.2.3), the addresses NixOS gives them. `proxy` runs Debian's `squid.service`, allowing
the client to reach the server; `client` and `server` run Debian's nginx serving `/etc/hostname`.
Each has nixpkgs' `check-connection` script. Squid's shutdown lasts a second rather than its
default 30, within the 10 s herd gives a machine to power off.

Deviations from nixpkgs' script:
- `${serverIp}`, `${clientIp}`, `${proxyExternalIp}`, `${proxyInternalIp}` (Nix values read from
  the nodes' configurations) become the addresses they evaluate to: 192.168.2.3, 192.168.1.1,
  192.168.2.2, 192.168.1.2.
- `check-connection` (a package in nixpkgs' environment.systemPackages, so on the PATH) becomes
  `/root/bin/check-connection`: herd cannot place files under /usr, and commands get a fixed PATH.
"""

from __future__ import annotations

import herd

CHECK_CONNECTION = """\
#!/usr/bin/env bash

set -e

if [[ "$2" == "" || "$1" == "--help" || "$1" == "-h" ]];
then
    echo "check-connection <target-address> <[expect-success|expect-failure]>"
    exit 1
fi

ADDRESS="$1"

function test_icmp() { timeout 3 ping -c 1 "$ADDRESS"; }

if [[ "$2" == "expect-success" ]];
then
    test_icmp
else
    ! test_icmp
fi
"""

NGINX_CONF = """\
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 0.0.0.0:80;
    server_name server;
    root /etc;
    location / { index hostname; }
  }
}
"""

SQUID_CONF = """\
http_port 3128
acl client src 192.168.1.1
acl server dst 192.168.2.3
http_access allow client server
http_access deny all
cache deny all
coredump_dir /var/spool/squid
pid_filename /run/squid.pid
shutdown_lifetime 1 second
"""

CHECK = {"/root/bin/check-connection": {"content": CHECK_CONNECTION, "mode": 0o755}}


def web_server(networks: list[str]) -> dict[str, object]:
    return {
        "networks": networks,
        "packages": ["curl", "nginx"],
        "services": ["nginx"],
        "files": {**CHECK, "/etc/nginx/nginx.conf": NGINX_CONF},
    }


test = herd.Test(
    name="nixos-squid",
    networks={"vlan1": {"subnet": "192.168.1.0/24"}, "vlan2": {"subnet": "192.168.2.0/24"}},
    machines={
        "client": web_server(["vlan1"]),
        "proxy": {
            "networks": ["vlan1", "vlan2"],
            "packages": ["squid"],
            "services": ["squid"],
            "files": {**CHECK, "/etc/squid/squid.conf": SQUID_CONF},
        },
        "server": web_server(["vlan2"]),
    },
    script="""
client.start()
proxy.start()
server.start()

proxy.wait_for_unit("network.target")
proxy.wait_for_unit("squid.service")
client.wait_for_unit("network.target")
server.wait_for_unit("network.target")
server.wait_for_unit("nginx.service")

# Topology checks.
with subtest("proxy connectivity"):
    ## The proxy should have direct access to the server and client
    proxy.succeed("/root/bin/check-connection 192.168.2.3 expect-success")
    proxy.succeed("/root/bin/check-connection 192.168.1.1 expect-success")

with subtest("server connectivity"):
    ## The server should have direct access to the proxy
    server.succeed("/root/bin/check-connection 192.168.2.2 expect-success")
    ## ... and not have access to the client
    server.succeed("/root/bin/check-connection 192.168.1.1 expect-failure")

with subtest("client connectivity"):
    # The client should be also able to connect to the proxy
    client.succeed("/root/bin/check-connection 192.168.1.2 expect-success")
    # but not the client to the server
    client.succeed("/root/bin/check-connection 192.168.2.3 expect-failure")

with subtest("HTTP"):
    # the client cannot reach the server directly over HTTP
    client.fail('[[ `timeout 3 curl http://192.168.2.3` ]]')
    # ... but can with the proxy
    client.succeed('[[ `timeout 3 curl --proxy http://192.168.1.2:3128 http://192.168.2.3` == "server" ]]')
    # and cannot from the server
    server.fail('[[ `timeout 3 curl http://192.168.1.1` ]]')
""",
    timeout=300,
)

ON_QEMU = False
