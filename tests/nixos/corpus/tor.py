"""nixpkgs nixos/tests/tor.nix, restated for herd.

Source: nixpkgs, nixos/tests/tor.nix at commit 05924f714f31ff83bd10ed1710638688999c3725 (the stored
file carries unresolved merge markers outside its testScript; the script itself has none). The
script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and the
Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `client` has Debian's tor and netcat-openbsd, and runs tor as NixOS's `tor.service`
(Debian's unit of that name only groups its instances), a client with `ControlPort 9051`, with its
state directory as a `StateDirectory=` (Debian's maintainer script makes it in the package layer,
but a host that has tor installed itself keeps its own from its machines). Its machine has no route
out of its network, so tor reaches no relay; the test only talks to its control port.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

TOR_UNIT = """\
[Unit]
Description=Tor, as NixOS's module runs it
After=network.target

[Service]
User=debian-tor
Group=debian-tor
ExecStart=/usr/bin/tor -f /etc/tor/corpus-torrc
StateDirectory=tor
StateDirectoryMode=0700
"""

TORRC = """\
SocksPort 9050
ControlPort 9051
DataDirectory /var/lib/tor
RunAsDaemon 0
Log notice stdout
"""

test = herd.Test(
    name="nixos-tor",
    machines={
        "client": {
            "packages": ["netcat-openbsd", "tor"],
            "units": {"tor.service": TOR_UNIT},
            "files": {"/etc/tor/corpus-torrc": TORRC},
        }
    },
    script="""
client.wait_for_unit("tor.service")
client.wait_for_open_port(9051)
assert "514 Authentication required." in client.succeed(
    "echo GETINFO version | nc 127.0.0.1 9051"
)
""",
    timeout=300,
)

ON_QEMU = False
