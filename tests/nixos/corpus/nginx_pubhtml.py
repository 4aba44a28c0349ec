"""nixpkgs nixos/tests/nginx-pubhtml.nix, restated for herd.

Source: nixpkgs, nixos/tests/nginx-pubhtml.nix at commit 00f7b4bdb0befccf40d8d93ebd6745d81553ef0f.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` runs Debian's nginx with nixpkgs' location that maps `/~user/...` to
`/home/user/public_html/...`, its unit with `ProtectHome=read-only` as nixpkgs sets it, and the
normal user `foo` with a home directory, made by a unit before nginx starts.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

NGINX_CONF = r"""
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
    location ~ ^/\~([a-z0-9_]+)(/.*)?$ {
      alias /home/$1/public_html$2;
    }
  }
}
"""

PROTECT_HOME = """\
[Unit]
After=user-foo.service

[Service]
ProtectHome=read-only
"""

USER_UNIT = """\
[Unit]
Description=the normal user foo, as the test's NixOS configuration declares it
Before=nginx.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/useradd --create-home --shell /bin/sh foo
"""

test = herd.Test(
    name="nixos-nginx-pubhtml",
    machines={
        "machine": {
            "packages": ["curl", "nginx"],
            "units": {"user-foo.service": USER_UNIT},
            "services": ["nginx"],
            "files": {
                "/etc/nginx/nginx.conf": NGINX_CONF,
                "/etc/systemd/system/nginx.service.d/protect-home.conf": PROTECT_HOME,
            },
        }
    },
    script="""
machine.wait_for_unit("nginx")
machine.wait_for_open_port(80)
machine.succeed("chmod 0711 /home/foo")
machine.succeed("su -c 'mkdir -p /home/foo/public_html' foo")
machine.succeed("su -c 'echo bar > /home/foo/public_html/bar.txt' foo")
machine.succeed('test "$(curl -fvvv http://localhost/~foo/bar.txt)" = bar')
""",
    timeout=300,
)

ON_QEMU = False
