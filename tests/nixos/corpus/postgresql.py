"""nixpkgs nixos/tests/postgresql.nix, restated for herd.

Source: nixpkgs, nixos/tests/postgresql.nix at commit 050cdf81befb6479c01678fe2274c5aed1e3129f (the
test made per PostgreSQL version with `backup-all = false`; here for Debian 12's PostgreSQL 15).
The script is nixpkgs' testScript, verbatim but for the deviations below. nixpkgs is Copyright (c)
2003-2025 Eelco Dolstra and the Nixpkgs/NixOS contributors, under the MIT licence.

Machines: `machine` has Debian's postgresql and sudo, and runs PostgreSQL 15 as NixOS's
`postgresql.service` does: one data directory, made by initdb before the first start, the server
logging to the journal; `postgresqlBackup-postgres.service` dumps the database `postgres` to
/var/backup/postgresql/postgres.sql.gz with mode 600, as NixOS's postgresqlBackup. Debian's
package makes a cluster of its own (15/main), which its systemd generator would start with any
`postgresql.service`: its start.conf says `manual`, and the NixOS server's data directory is
/var/lib/postgresql/nixos-15, apart from it. The machine has a sudoers file of its own (the one
sudo installs is readable by root only, which a host that has sudo keeps from machines). The
script shuts the machine down and boots it again.

Deviations from nixpkgs' script:
- `cat ${test-sql}` (a store path of pkgs.writeText) becomes `cat /root/postgresql-test.sql`, the
  same SQL placed by the declaration's `files`.
- `${backupService}` and `${backupName}` become `postgresqlBackup-postgres` and `postgres`, their
  values for the test without backup-all.
- `sudo -u postgres initdb` becomes `sudo -u postgres /usr/lib/postgresql/15/bin/initdb`: NixOS
  puts initdb on the PATH, Debian keeps it in its version's directory.
"""

from __future__ import annotations

import herd

TEST_SQL = """\
CREATE EXTENSION pgcrypto; -- just to check if lib loading works
CREATE TABLE sth (
  id int
);
INSERT INTO sth (id) VALUES (1);
INSERT INTO sth (id) VALUES (1);
INSERT INTO sth (id) VALUES (1);
INSERT INTO sth (id) VALUES (1);
INSERT INTO sth (id) VALUES (1);
CREATE TABLE xmltest ( doc xml );
INSERT INTO xmltest (doc) VALUES ('<test>ok</test>'); -- check if libxml2 enabled
"""

POSTGRESQL_UNIT = """\
[Unit]
Description=PostgreSQL 15, one data directory, as NixOS's module runs it
After=network.target

[Service]
Type=notify
User=postgres
Group=postgres
StateDirectory=postgresql
StateDirectoryMode=0750
RuntimeDirectory=postgresql
RuntimeDirectoryMode=2775
Environment=PGDATA=/var/lib/postgresql/nixos-15
ExecStartPre=/bin/sh -c 'test -e "$PGDATA/PG_VERSION" || /usr/lib/postgresql/15/bin/initdb -D "$PGDATA"'
ExecStart=/usr/lib/postgresql/15/bin/postgres -D ${PGDATA} -c listen_addresses=localhost \
    -c unix_socket_directories=/run/postgresql
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
KillSignal=SIGINT
"""

BACKUP_UNIT = """\
[Unit]
Description=Backup of the database postgres, as NixOS's postgresqlBackup makes it
Requires=postgresql.service
After=postgresql.service

[Service]
Type=oneshot
User=postgres
UMask=0077
ExecStartPre=+/usr/bin/install -d -o postgres -g postgres -m 0700 /var/backup/postgresql
ExecStart=/bin/sh -c '/usr/lib/postgresql/15/bin/pg_dump postgres | gzip -c \
    > /var/backup/postgresql/postgres.sql.gz.in-progress'
ExecStart=/bin/mv /var/backup/postgresql/postgres.sql.gz.in-progress \
    /var/backup/postgresql/postgres.sql.gz
"""

test = herd.Test(
    name="nixos-postgresql",
    machines={
        "machine": {
            "packages": ["postgresql", "sudo"],
            "units": {"postgresql.service": POSTGRESQL_UNIT},
            "files": {
                "/etc/systemd/system/postgresqlBackup-postgres.service": BACKUP_UNIT,
                "/etc/sudoers": {"content": "root ALL=(ALL:ALL) ALL\n", "mode": 0o440},
                "/etc/postgresql/15/main/start.conf": "manual\n",
                "/root/postgresql-test.sql": TEST_SQL,
            },
        }
    },
    script="""
def check_count(statement, lines):
    return 'test $(sudo -u postgres psql postgres -tAc "{}"|wc -l) -eq {}'.format(
        statement, lines
    )


machine.start()
machine.wait_for_unit("postgresql")

with subtest("Postgresql is available just after unit start"):
    machine.succeed(
        "cat /root/postgresql-test.sql | sudo -u postgres psql"
    )

with subtest("Postgresql survives restart (bug #1735)"):
    machine.shutdown()
    time.sleep(2)
    machine.start()
    machine.wait_for_unit("postgresql")

machine.fail(check_count("SELECT * FROM sth;", 3))
machine.succeed(check_count("SELECT * FROM sth;", 5))
machine.fail(check_count("SELECT * FROM sth;", 4))
machine.succeed(check_count("SELECT xpath('/test/text()', doc) FROM xmltest;", 1))

with subtest("Backup service works"):
    machine.succeed(
        "systemctl start postgresqlBackup-postgres.service",
        "zcat /var/backup/postgresql/postgres.sql.gz | grep '<test>ok</test>'",
        "stat -c '%a' /var/backup/postgresql/postgres.sql.gz | grep 600",
    )

with subtest("Initdb works"):
    machine.succeed("sudo -u postgres /usr/lib/postgresql/15/bin/initdb -D /tmp/testpostgres2")

machine.shutdown()
""",
    timeout=300,
)

ON_QEMU = False
