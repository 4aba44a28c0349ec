"""nixpkgs nixos/tests/etcd/etcd.nix, restated for herd.

Source: nixpkgs, nixos/tests/etcd/etcd.nix at commit 326447983d366a5795737aed3a41d1b78205581c.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `node` has Debian's etcd-server and etcd-client, and runs `etcd.service` with its
packaged defaults (client URL localhost:2379, as NixOS's module); a drop-in gives it its state
directory, which Debian's maintainer script makes in the package layer, but which a host that has
etcd installed itself keeps from its machines (it is etcd's alone).

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

STATE_DIRECTORY = """\
[Service]
StateDirectory=etcd
StateDirectoryMode=0700
"""

test = herd.Test(
    name="nixos-etcd",
    machines={
        "node": {
            "packages": ["etcd-client", "etcd-server"],
            "services": ["etcd"],
            "files": {"/etc/systemd/system/etcd.service.d/state.conf": STATE_DIRECTORY},
        }
    },
    script="""
with subtest("should start etcd node"):
    node.start()
    node.wait_for_unit("etcd.service")
    # Add additional wait for actual readiness
    node.wait_until_succeeds("etcdctl endpoint health")

with subtest("should write and read some values to etcd"):
    node.succeed("etcdctl put /foo/bar 'Hello world'")
    node.succeed("etcdctl get /foo/bar | grep 'Hello world'")
""",
    timeout=300,
)

ON_QEMU = True
