"""nixpkgs nixos/tests/gitdaemon.nix, restated for herd.

Source: nixpkgs, nixos/tests/gitdaemon.nix at commit 0db57dc974ee8d2d179a670393dc437f736bcfdf.
The script is nixpkgs' testScript, verbatim but for the deviation below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `server` runs git's daemon as NixOS's `git-daemon.service` (base path /git, as the user
`git`); the user is made early in boot, before systemd-tmpfiles makes /git for it, as NixOS's
activation and the test's tmpfiles rule do. `client` has git.

Deviations from nixpkgs' script:
- `sha256sum -c ${hashes}` (a store path of pkgs.writeText) becomes `sha256sum -c /root/hashes`,
  the same list placed by the declaration's `files`.
"""

from __future__ import annotations

import herd

HASHES = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c  /project/bar\n"

GIT_USER_UNIT = """\
[Unit]
Description=the user git, made before the rest of the boot as NixOS's activation makes users
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target systemd-tmpfiles-setup.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/useradd --system --user-group --no-create-home --home-dir /git git
"""

GIT_DAEMON_UNIT = """\
[Unit]
Description=Git daemon, as NixOS's module runs it
After=network.target

[Service]
ExecStart=/usr/lib/git-core/git-daemon --reuseaddr --base-path=/git --port=9418 \
    --user=git --group=git
"""

test = herd.Test(
    name="nixos-gitdaemon",
    machines={
        "server": {
            "packages": ["git"],
            "units": {"git-user.service": GIT_USER_UNIT, "git-daemon.service": GIT_DAEMON_UNIT},
            "files": {"/etc/tmpfiles.d/git.conf": "d /git 0755 git git - -\n"},
        },
        "client": {"packages": ["git"], "files": {"/root/hashes": HASHES}},
    },
    script="""
start_all()

with subtest("create project.git"):
    server.succeed(
        "git init --bare /git/project.git",
        "touch /git/project.git/git-daemon-export-ok",
    )

with subtest("add file to project.git"):
    server.succeed(
        "git clone /git/project.git /project",
        "echo foo > /project/bar",
        "git config --global user.email 'you@example.com'",
        "git config --global user.name 'Your Name'",
        "git -C /project add bar",
        "git -C /project commit -m 'quux'",
        "git -C /project push",
        "rm -r /project",
    )

# Change user/group to default daemon user/group from module
# to avoid "fatal: detected dubious ownership in repository at '/git/project.git'"
server.succeed("chown git:git -R /git/project.git")

with subtest("git daemon starts"):
    server.wait_for_unit("git-daemon.service")


server.systemctl("start network-online.target")
client.systemctl("start network-online.target")
server.wait_for_unit("network-online.target")
client.wait_for_unit("network-online.target")

with subtest("client can clone project.git"):
    client.succeed(
        "git clone git://server/project.git /project",
        "sha256sum -c /root/hashes",
    )
""",
    timeout=300,
)

ON_QEMU = False
