"""nixpkgs nixos/tests/rsyncd.nix, restated for herd.

Source: nixpkgs, nixos/tests/rsyncd.nix at commit 14fd976016aee7e8a52f362b145a16947e111515.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `a` runs rsync's daemon as Debian's `rsync.service`; `b` runs it socket-activated, as
NixOS's module does with `socketActivated = true` (`rsync.socket` and `rsync@.service`). Both share
the module `tmp` (nixpkgs shares `/nix/store`; here `/usr`, the tree the host shares).

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

RSYNCD_CONF = """\
reverse lookup = false
forward lookup = false

[tmp]
path = /usr
comment = test module
"""

RSYNC_SOCKET = """\
[Unit]
Description=rsync daemon, socket-activated

[Socket]
ListenStream=873
Accept=yes

[Install]
WantedBy=sockets.target
"""

RSYNC_AT_SERVICE = """\
[Unit]
Description=rsync daemon, one connection

[Service]
ExecStart=/usr/bin/rsync --daemon --config=/etc/rsyncd.conf
StandardInput=socket
StandardOutput=inherit
"""

test = herd.Test(
    name="nixos-rsyncd",
    machines={
        "a": {"packages": ["rsync"], "services": ["rsync"], "files": {"/etc/rsyncd.conf": RSYNCD_CONF}},
        "b": {
            "packages": ["rsync"],
            "units": {"rsync.socket": RSYNC_SOCKET},
            "files": {
                "/etc/rsyncd.conf": RSYNCD_CONF,
                "/etc/systemd/system/rsync@.service": RSYNC_AT_SERVICE,
            },
        },
    },
    script="""
start_all()
a.wait_for_unit("rsync")
b.wait_for_unit("sockets.target")
b.succeed("rsync a::")
a.succeed("rsync b::")
""",
    timeout=300,
)

ON_QEMU = False
