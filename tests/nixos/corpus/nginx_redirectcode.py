"""nixpkgs nixos/tests/nginx-redirectcode.nix, restated for herd.

Source: nixpkgs, nixos/tests/nginx-redirectcode.nix at commit
03893d1cee321942cebc11f1eb48e89f9557cba1. The script is nixpkgs' testScript, verbatim. nixpkgs is
Copyright (c) 2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `webserver` (a NixOS container in nixpkgs) runs Debian's `nginx.service` with a
configuration equivalent to the module's `globalRedirect = "example.com/foo"` with
`redirectCode = 308`.

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
    return 308 $scheme://example.com/foo$request_uri;
  }
}
"""

test = herd.Test(
    name="nixos-nginx-redirectcode",
    machines={
        "webserver": {
            "packages": ["curl", "nginx"],
            "services": ["nginx"],
            "files": {"/etc/nginx/nginx.conf": NGINX_CONF},
        }
    },
    script=r"""
webserver.wait_for_unit("nginx")
webserver.wait_for_open_port(80)

# Check the status code
webserver.succeed("curl -si http://localhost | grep '^HTTP/[0-9.]\+ 308 Permanent Redirect'")
""",
    timeout=300,
)

ON_QEMU = False
