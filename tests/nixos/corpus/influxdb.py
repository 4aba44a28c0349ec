# ruff: noqa: E501 (a line of nixpkgs' script is longer, and the script stays verbatim)
"""nixpkgs nixos/tests/influxdb.nix, restated for herd.

Source: nixpkgs, nixos/tests/influxdb.nix at commit 14fd976016aee7e8a52f362b145a16947e111515.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `one` has Debian's influxdb and curl, and runs `influxdb.service` (InfluxDB 1.6) with
its packaged configuration, and a drop-in with what NixOS's module adds: the state directory (which
Debian's maintainer script makes in the package layer, but which a host that has influxdb
installed itself keeps from its machines), and a start that ends once the HTTP API answers `/ping`
(the module's postStart).

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

NIXOS_MODULE = """\
[Service]
StateDirectory=influxdb
ExecStartPost=/usr/bin/timeout 60 /bin/sh -c \
    'until curl -s -o /dev/null http://127.0.0.1:8086/ping; do sleep 0.2; done'
"""

test = herd.Test(
    name="nixos-influxdb",
    machines={
        "one": {
            "packages": ["curl", "influxdb"],
            "services": ["influxdb"],
            "files": {"/etc/systemd/system/influxdb.service.d/nixos.conf": NIXOS_MODULE},
        }
    },
    script="""
import shlex

start_all()

one.wait_for_unit("influxdb.service")

# create database
one.succeed(
    "curl -XPOST http://localhost:8086/query --data-urlencode 'q=CREATE DATABASE test'"
)

# write some points and run simple query
out = one.succeed(
    "curl -XPOST 'http://localhost:8086/write?db=test' --data-binary 'cpu_load_short,host=server01,region=us-west value=0.64 1434055562000000000'"
)

qv = "SELECT value FROM cpu_load_short WHERE region='us-west'"
cmd = f'curl -GET "http://localhost:8086/query?db=test" --data-urlencode {shlex.quote("q="+ qv)}'
out = one.succeed(cmd)

assert "2015-06-11T20:46:02Z" in out
assert "0.64" in out
""",
    timeout=300,
)

ON_QEMU = False
