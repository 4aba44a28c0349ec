"""nixpkgs nixos/tests/rsnapshot.nix, restated for herd.

Source: nixpkgs, nixos/tests/rsnapshot.nix at commit 0af055c5d708e2e495a1b65a1206034ffd02444d.
The script is nixpkgs' testScript, verbatim but for the deviations below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `backup` (a NixOS container in nixpkgs) has rsnapshot with nixpkgs' configuration, a
local directory to back up, and an SSH client key and known host for `server`; `server` runs
Debian's `ssh.service` with an ECDSA host key and accepts the client key for root, and has the
remote directory. The keys are fixed, made for this test as nixpkgs' snake-oil keys are for its
tests (so that loading the module needs no ssh-keygen on the host).

Deviations from nixpkgs' script (each a Nix value of the test's `let`, replaced by its value):
- `${snapshotRoot}` becomes `/var/cache/rsnapshot`.
- `${localDir}` and `${remoteDir}` become `/data/local` and `/data/remote`.
- `${localFile}` and `${remoteFile}` become `keep.txt`.
- `${localFileData}` and `${remoteFileData}` become "This file should be backed up locally." and
  "This file should be backed up over ssh.".
"""

from __future__ import annotations

import herd

# Fixed key pairs made for this test, as nixpkgs' snake-oil keys are: they guard nothing. The
# server's ECDSA host key, and the backup's ed25519 client key.
HOST_KEY = """\
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAaAAAABNlY2RzYS
1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQRDWE70G0RsqRja6/IcfW2B6NhOxcl5
beoTNgeJUc9MdzdGuf4gqJWHosKUGNoPdCZ2bj4OlkNH1/NLwjRnJmuxAAAAmByeI6Ycni
OmAAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBENYTvQbRGypGNrr
8hx9bYHo2E7FyXlt6hM2B4lRz0x3N0a5/iColYeiwpQY2g90JnZuPg6WQ0fX80vCNGcma7
EAAAAgERHd9g1EOKcJn/8yboTLtza7NGyPL3jm2X7gFZJXvCMAAAAA
-----END OPENSSH PRIVATE KEY-----
"""
HOST_PUBLIC_KEY = (
    "ecdsa-sha2-nistp256 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBENYTvQbRGypGNrr8h"
    "x9bYHo2E7FyXlt6hM2B4lRz0x3N0a5/iColYeiwpQY2g90JnZuPg6WQ0fX80vCNGcma7E=\n"
)
CLIENT_KEY = """\
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDNrXK0x+a6xiDKbzVUsww3URss1IsajBjz/kpR0dS/sAAAAIgL83qeC/N6
ngAAAAtzc2gtZWQyNTUxOQAAACDNrXK0x+a6xiDKbzVUsww3URss1IsajBjz/kpR0dS/sA
AAAED6MusWr1vV9hMNWeLDLIConWswmicOiuF9hOdedgJ10s2tcrTH5rrGIMpvNVSzDDdR
GyzUixqMGPP+SlHR1L+wAAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
"""
CLIENT_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM2tcrTH5rrGIMpvNVSzDDdRGyzUixqMGPP+SlHR1L+w\n"

RSNAPSHOT_CONF = """\
config_version\t1.2
cmd_cp\t/bin/cp
cmd_rm\t/bin/rm
cmd_rsync\t/usr/bin/rsync
cmd_ssh\t/usr/bin/ssh
cmd_logger\t/usr/bin/logger
cmd_du\t/usr/bin/du
lockfile\t/run/rsnapshot.pid
link_dest\t1

snapshot_root\t/var/cache/rsnapshot/
retain\tdaily\t6
backup\t/data/local/\tlocalhost/
backup\troot@server:/data/remote/\tserver/
"""

test = herd.Test(
    name="nixos-rsnapshot",
    machines={
        "backup": {
            "packages": ["openssh-client", "rsnapshot"],
            "files": {
                "/etc/rsnapshot.conf": RSNAPSHOT_CONF,
                "/data/local/keep.txt": "This file should be backed up locally.",
                "/etc/ssh/ssh_known_hosts": f"server {HOST_PUBLIC_KEY}",
                "/etc/ssh/ssh_config.d/server.conf": "Host server\n  IdentityFile /etc/ssh/client_ed25519\n",
                "/etc/ssh/client_ed25519": {"content": CLIENT_KEY, "mode": 0o600},
            },
        },
        "server": {
            "packages": ["openssh-server", "rsync"],
            "services": ["ssh"],
            "files": {
                "/data/remote/keep.txt": "This file should be backed up over ssh.",
                "/etc/ssh/sshd_config.d/host-key.conf": "HostKey /etc/ssh/ssh_host_ecdsa_key\n",
                "/etc/ssh/ssh_host_ecdsa_key": {"content": HOST_KEY, "mode": 0o600},
                "/root/.ssh/authorized_keys": {"content": CLIENT_PUBLIC_KEY, "mode": 0o600},
            },
        },
    },
    script="""
start_all()

backup.wait_for_unit("multi-user.target")
server.wait_for_unit("multi-user.target")
server.wait_for_open_port(22)

backup.succeed("rsnapshot -c /etc/rsnapshot.conf daily")

with subtest("Local directory is backed up"):
    backup.succeed(
        "test -f /var/cache/rsnapshot/daily.0/localhost/data/local/keep.txt"
    )
    assert "This file should be backed up locally." in backup.succeed(
        "cat /var/cache/rsnapshot/daily.0/localhost/data/local/keep.txt"
    )

with subtest("Remote directory is backed up"):
    backup.succeed(
        "test -f /var/cache/rsnapshot/daily.0/server/data/remote/keep.txt"
    )
    assert "This file should be backed up over ssh." in backup.succeed(
        "cat /var/cache/rsnapshot/daily.0/server/data/remote/keep.txt"
    )
""",
    timeout=300,
)

ON_QEMU = False
