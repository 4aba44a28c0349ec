"""nixpkgs nixos/tests/proxy.nix, restated for herd.

Source: nixpkgs, nixos/tests/proxy.nix at commit 02d79c9c8bcba9020b4c93784f96e0cb15709349.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `proxy` runs Debian's `apache2.service` with mod_proxy_balancer in front of `backend1`
and `backend2` (the configuration of nixpkgs' virtual host, in a `conf-enabled` file, so that it is
the first virtual host on port 80); the backends run Debian's Apache with its default site, serving
a page of their own (nixpkgs serves valgrind's HTML manual); `client` has curl. The script blocks
and unblocks the backends.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

# httpd is "httpd.service" in NixOS and "apache2.service" in Debian: an alias unit, as NixOS names it.
HTTPD_ALIAS = """\
[Unit]
Description=Apache, under the name NixOS gives it
Requires=apache2.service
After=apache2.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
"""

BALANCER_CONF = """\
<IfModule !proxy_module>
  LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
</IfModule>
<IfModule !proxy_http_module>
  LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
</IfModule>
<IfModule !slotmem_shm_module>
  LoadModule slotmem_shm_module /usr/lib/apache2/modules/mod_slotmem_shm.so
</IfModule>
<IfModule !proxy_balancer_module>
  LoadModule proxy_balancer_module /usr/lib/apache2/modules/mod_proxy_balancer.so
</IfModule>
<IfModule !lbmethod_byrequests_module>
  LoadModule lbmethod_byrequests_module /usr/lib/apache2/modules/mod_lbmethod_byrequests.so
</IfModule>

ExtendedStatus on

# No reuse of backend connections: nixpkgs' script asks the proxy again within milliseconds of
# blocking a backend, and a connection kept alive from before the block would time out reading
# (502, no failover), where a new connection fails to connect and fails over to the other backend.
# In nixpkgs' VMs the backends' 5 s keep-alive has closed those connections by then.
SetEnv proxy-nokeepalive 1

<VirtualHost *:80>
  ServerName localhost
  ServerAdmin bar@example.org

  <Location /server-status>
    Require all granted
    SetHandler server-status
  </Location>

  <Proxy balancer://cluster>
    Require all granted
    BalancerMember http://backend1 retry=0
    BalancerMember http://backend2 retry=0
  </Proxy>

  ProxyStatus       full
  ProxyPass         /server-status !
  ProxyPass         /       balancer://cluster/
  ProxyPassReverse  /       balancer://cluster/

  # For testing; don't want to wait forever for dead backend servers.
  ProxyTimeout      5
</VirtualHost>
"""


def web_server(files: dict[str, str]) -> dict[str, object]:
    return {"packages": ["apache2"], "units": {"httpd.service": HTTPD_ALIAS}, "files": files}


test = herd.Test(
    name="nixos-proxy",
    machines={
        "proxy": web_server({"/etc/apache2/conf-enabled/balancer.conf": BALANCER_CONF}),
        "backend1": web_server({"/var/www/html/index.html": "<p>backend1</p>\n"}),
        "backend2": web_server({"/var/www/html/index.html": "<p>backend2</p>\n"}),
        "client": {"packages": ["curl"]},
    },
    script="""
start_all()

proxy.wait_for_unit("httpd")
backend1.wait_for_unit("httpd")
backend2.wait_for_unit("httpd")
client.wait_for_unit("network.target")

# With the back-ends up, the proxy should work.
client.succeed("curl --fail http://proxy/")

client.succeed("curl --fail http://proxy/server-status")

# Block the first back-end.
backend1.block()

# The proxy should still work.
client.succeed("curl --fail http://proxy/")
client.succeed("curl --fail http://proxy/")

# Block the second back-end.
backend2.block()

# Now the proxy should fail as well.
client.fail("curl --fail http://proxy/")

# But if the second back-end comes back, the proxy should start
# working again.
backend2.unblock()
client.succeed("curl --fail http://proxy/")
""",
    timeout=300,
)

ON_QEMU = False
