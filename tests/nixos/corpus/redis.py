"""nixpkgs nixos/tests/redis.nix, restated for herd.

Source: nixpkgs, nixos/tests/redis.nix at commit 052fa434e9cad4362367160101e32bfc1d76e793.
The script is nixpkgs' testScript, verbatim but for the deviations below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` runs two Redis servers as NixOS's module names them, `redis.service` (port 6379
and a socket) and `redis-test.service` (a socket only), each as its own user and group, and the
users `member` and `member-test` in those groups, made by a unit before the servers start.

Deviations from nixpkgs' script:
- `${redis.servers."".unixSocket}` becomes `/run/redis/redis.sock`, the path NixOS's module gives it.
- `${redis.servers."test".unixSocket}` becomes `/run/redis-test/redis.sock`, likewise.
- `${package}/bin/redis-cli` becomes `redis-cli`: Debian's, on the PATH, instead of a store path.
"""

from __future__ import annotations

import herd


def redis_unit(suffix: str) -> str:
    return f"""\
[Unit]
Description=Redis server redis{suffix}
After=network.target redis-users.service
Requires=redis-users.service

[Service]
Type=notify
User=redis{suffix}
Group=redis{suffix}
ExecStart=/usr/bin/redis-server /etc/redis/corpus{suffix}.conf
RuntimeDirectory=redis{suffix}
RuntimeDirectoryMode=0750
StateDirectory=redis{suffix}
"""


def redis_conf(suffix: str, port: int) -> str:
    return f"""\
port {port}
bind 127.0.0.1
unixsocket /run/redis{suffix}/redis.sock
unixsocketperm 660
supervised systemd
daemonize no
dir /var/lib/redis{suffix}
"""


USERS_UNIT = """\
[Unit]
Description=the users of the redis groups, as the test's NixOS configuration declares them
Before=redis.service redis-test.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/useradd --system --user-group --no-create-home redis-test
ExecStart=/usr/sbin/useradd --no-create-home --groups redis member
ExecStart=/usr/sbin/useradd --no-create-home --groups redis-test member-test
"""

test = herd.Test(
    name="nixos-redis",
    machines={
        "machine": {
            "packages": ["redis-server", "redis-tools"],
            "units": {
                "redis-users.service": USERS_UNIT,
                "redis.service": redis_unit(""),
                "redis-test.service": redis_unit("-test"),
            },
            "files": {
                "/etc/redis/corpus.conf": redis_conf("", 6379),
                "/etc/redis/corpus-test.conf": redis_conf("-test", 0),
            },
        }
    },
    script="""
start_all()
machine.wait_for_unit("redis")
machine.wait_for_unit("redis-test")

# The unnamed Redis server still opens a port for backward-compatibility
machine.wait_for_open_port(6379)

machine.wait_for_file("/run/redis/redis.sock")
machine.wait_for_file("/run/redis-test/redis.sock")

# The unix socket is accessible to the redis group
machine.succeed('su member -c "redis-cli ping | grep PONG"')
machine.succeed('su member-test -c "redis-cli ping | grep PONG"')

machine.succeed("redis-cli ping | grep PONG")
machine.succeed("redis-cli -s /run/redis/redis.sock ping | grep PONG")
machine.succeed("redis-cli -s /run/redis-test/redis.sock ping | grep PONG")
""",
    timeout=300,
)

ON_QEMU = False
