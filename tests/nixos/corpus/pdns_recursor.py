"""nixpkgs nixos/tests/pdns-recursor.nix, restated for herd.

Source: nixpkgs, nixos/tests/pdns-recursor.nix at commit 14fd976016aee7e8a52f362b145a16947e111515.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `server` runs PowerDNS Recursor with Debian's packaged configuration (it listens on
127.0.0.1:53, as NixOS's module does by default), as NixOS's `pdns-recursor.service`: Debian's unit
of that name.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

test = herd.Test(
    name="nixos-pdns-recursor",
    machines={"server": {"packages": ["pdns-recursor"], "services": ["pdns-recursor"]}},
    script="""
server.wait_for_unit("pdns-recursor")
server.wait_for_open_port("53")
""",
    timeout=300,
)

ON_QEMU = False
