"""nixpkgs nixos/tests/nginx-status-page.nix, restated for herd.

Source: nixpkgs, nixos/tests/nginx-status-page.nix at commit
a27d63669d9dcb574a6cf994dc3f4d02c7a2061b. The script is nixpkgs' testScript, verbatim. nixpkgs is
Copyright (c) 2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: one network, nixpkgs' VLAN 1, with the addresses nixpkgs' systemd-networkd configuration
gives: `webserver` 10.0.0.1 and `client` 10.0.0.2. `webserver` runs Debian's nginx with the
module's `statusPage` (stub_status at /nginx_status, local clients only) and a location
returning "hello world".

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

NGINX_CONF = """\
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name localhost;
    location /nginx_status {
      stub_status;
      allow 127.0.0.1;
      allow ::1;
      deny all;
    }
    location /index.html {
      return 200 'hello world\\n';
    }
  }
}
"""

test = herd.Test(
    name="nixos-nginx-status-page",
    networks={"vlan1": {"subnet": "10.0.0.0/24"}},
    machines={
        "webserver": {
            "networks": {"vlan1": {"address": "10.0.0.1"}},
            "packages": ["curl", "nginx"],
            "services": ["nginx"],
            "files": {"/etc/nginx/nginx.conf": NGINX_CONF},
        },
        "client": {"networks": {"vlan1": {"address": "10.0.0.2"}}, "packages": ["curl"]},
    },
    script=r"""
start_all()

webserver.wait_for_unit("nginx")
webserver.wait_for_open_port(80)

def expect_http_code(node, code, url):
    http_code = node.succeed(f"curl -w '%{{http_code}}' '{url}'")
    assert http_code.split("\n")[-1].strip() == code, \
      f"expected {code} but got following response:\n{http_code}"

with subtest("localhost can access status page"):
    expect_http_code(webserver, "200", "http://localhost/nginx_status")

with subtest("localhost can access other page"):
    expect_http_code(webserver, "200", "http://localhost/index.html")

with subtest("client can not access status page"):
    expect_http_code(client, "403", "http://10.0.0.1/nginx_status")

with subtest("client can access other page"):
    expect_http_code(client, "200", "http://10.0.0.1/index.html")
""",
    timeout=300,
)

ON_QEMU = False
