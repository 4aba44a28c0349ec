"""nixpkgs nixos/tests/memcached.nix, restated for herd.

Source: nixpkgs, nixos/tests/memcached.nix at commit 0af8ef49d019dbd7c7daa85a7c3200aa809ba7ce.
The script is nixpkgs' testScript, verbatim but for the deviation below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` runs Debian's `memcached.service` with its packaged configuration (localhost,
port 11211, as NixOS's module); the test's Python client is a file in the machine, using Debian's
python3-memcache.

Deviations from nixpkgs' script:
- `machine.succeed("${testScript}")` (a store path built by pkgs.writers.writePython3) becomes
  `machine.succeed("/root/test_memcache")`: the same program, placed by the declaration's `files`,
  since herd has no Nix store.
"""

from __future__ import annotations

import herd

TEST_MEMCACHE = """\
#!/usr/bin/python3
import memcache
c = memcache.Client(['localhost:11211'])
c.set('key', 'value')
assert 'value' == c.get('key')
"""

test = herd.Test(
    name="nixos-memcached",
    machines={
        "machine": {
            "packages": ["memcached", "python3-memcache"],
            "services": ["memcached"],
            "files": {"/root/test_memcache": {"content": TEST_MEMCACHE, "mode": 0o755}},
        }
    },
    script="""
machine.start()
machine.wait_for_unit("memcached.service")
machine.wait_for_open_port(11211)
machine.succeed("/root/test_memcache")
""",
    timeout=300,
)

ON_QEMU = False
