"""nixpkgs nixos/tests/lighttpd.nix, restated for herd.

Source: nixpkgs, nixos/tests/lighttpd.nix at commit 47facf0b743169c21c46c098a0d6f28d546fe7c4.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `server` runs Debian's `lighttpd.service` with its packaged configuration, whose
document root `/var/www/html` holds the test's `file.txt`. Debian's unit is active as soon as
lighttpd runs (it does not tell systemd when it listens), so a drop-in makes it active once port 80
accepts connections: nixpkgs' script curls right after `wait_for_unit`, which a container reaches in
milliseconds.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

READY_WHEN_LISTENING = """\
[Service]
ExecStartPost=/usr/bin/timeout 30 /bin/bash -c \
    'until : 2>/dev/null 3<>/dev/tcp/127.0.0.1/80; do sleep 0.1; done'
"""

test = herd.Test(
    name="nixos-lighttpd",
    machines={
        "server": {
            "packages": ["curl", "lighttpd"],
            "services": ["lighttpd"],
            "files": {
                "/var/www/html/file.txt": "hello nixos test\n",
                "/etc/systemd/system/lighttpd.service.d/ready.conf": READY_WHEN_LISTENING,
            },
        }
    },
    script="""
start_all()
server.wait_for_unit("lighttpd.service")
res = server.succeed("curl --fail http://localhost/file.txt")
assert "hello nixos test" in res, f"bad server response: '{res}'"
server.succeed("systemctl reload lighttpd")
""",
    timeout=300,
)

ON_QEMU = True
