"""nixpkgs nixos/tests/vsftpd.nix, restated for herd.

Source: nixpkgs, nixos/tests/vsftpd.nix at commit 1181bb22b6c4ab780f2aed2619e6410f58bd3316.
The script is nixpkgs' testScript, verbatim. nixpkgs is Copyright (c) 2003-2025 Eelco Dolstra and
the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `server` runs Debian's `vsftpd.service` configured as the NixOS module was (local users
on the user list only, writable, root `/tmp`), and the system user `ftp-test-user` with its
password, made by a unit before vsftpd starts; `client` has curl.

Deviations from nixpkgs' script: none.
"""

from __future__ import annotations

import herd

VSFTPD_CONF = """\
listen=YES
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_root=/tmp
userlist_enable=YES
userlist_deny=NO
userlist_file=/etc/vsftpd.user_list
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
"""

USER_UNIT = """\
[Unit]
Description=the FTP user the test's NixOS configuration declares
Before=vsftpd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/groupadd --system ftp-test-group
ExecStart=/bin/sh -c 'useradd --system --create-home --gid ftp-test-group --shell /bin/sh \
    --password "$(openssl passwd -6 ftp-test-password)" ftp-test-user'
"""

test = herd.Test(
    name="nixos-vsftpd",
    machines={
        "server": {
            "packages": ["openssl", "vsftpd"],
            "units": {"ftp-test-user.service": USER_UNIT},
            "services": ["vsftpd"],
            "files": {"/etc/vsftpd.conf": VSFTPD_CONF, "/etc/vsftpd.user_list": "ftp-test-user\n"},
        },
        "client": {"packages": ["curl"]},
    },
    script="""
client.start()
server.wait_for_unit("vsftpd")
server.wait_for_open_port(21)

client.succeed("curl -u ftp-test-user:ftp-test-password ftp://server")
client.succeed('echo "this is a test" > /tmp/test.file.up')
client.succeed("curl -v -T /tmp/test.file.up -u ftp-test-user:ftp-test-password ftp://server")
client.succeed("curl -u ftp-test-user:ftp-test-password ftp://server/test.file.up > /tmp/test.file.down")
client.succeed("diff /tmp/test.file.up /tmp/test.file.down")
assert client.succeed("cat /tmp/test.file.up") == server.succeed("cat /tmp/test.file.up")
assert client.succeed("cat /tmp/test.file.down") == server.succeed("cat /tmp/test.file.up")
""",
    timeout=300,
)

ON_QEMU = False
