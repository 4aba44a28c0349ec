"""Declared services, units and files, and the waits on them, in real containers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from herd import CommandFailed, Test, WaitTimeout

from .conftest import run

WEB_UNIT = """[Unit]
Description=a small web server for herd's tests
After=network.target

[Service]
ExecStart=/usr/bin/python3 -m http.server 8000 --directory /srv/www
"""
BROKEN_UNIT = """[Service]
Type=oneshot
ExecStart=/bin/sh -c 'exit 7'
"""
HTTP_GET = "exec 3<>/dev/tcp/{host}/8000; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"


def test_declared_units_files_and_ports(tmp_path: Path) -> None:
    def script(server, client, start_all) -> None:  # type: ignore[no-untyped-def]
        start_all()
        server.wait_for_unit("web.service", timeout=20)
        server.wait_for_open_port(8000, timeout=20)
        assert server.get_unit_info("web.service")["ActiveState"] == "active"
        assert server.get_unit_property("web", "SubState") == "running"
        server.require_unit_state("web.service", "active")
        page = client.succeed(f"bash -c {HTTP_GET.format(host='server')!r}")
        assert "200 OK" in page and page.endswith("hello from herd\n")
        assert server.succeed("cat /etc/app.conf") == "mode=test\n"
        assert server.succeed("stat -c %a /srv/secret") == "600\n"
        # a unit that failed is reported at once, and so is one that does not exist
        started = time.monotonic()
        with pytest.raises(CommandFailed, match=r"unit 'broken.service' reached state 'failed'"):
            server.wait_for_unit("broken.service", timeout=30)
        with pytest.raises(CommandFailed, match=r"unit 'nothing.service' does not exist"):
            server.wait_for_unit("nothing", timeout=30)
        assert time.monotonic() - started < 5
        # stopping the service closes its port
        server.systemctl("stop web.service")
        server.wait_for_closed_port(8000, timeout=10)
        with pytest.raises(WaitTimeout, match=r"waiting for .*8000"):
            server.wait_for_open_port(8000, timeout=0.2)
        server.start_job("web.service")
        server.wait_for_open_port(8000, timeout=20)
        # network-online.target is reached, and nothing the test did not ask for runs
        server.wait_for_unit("network-online.target", timeout=5)
        services = server.succeed("systemctl list-units --type=service --state=active --no-legend --plain")
        active = sorted(line.split()[0] for line in services.splitlines())
        assert set(active) <= {
            "web.service",
            "herd-network.service",
            "systemd-journald.service",
            "systemd-journal-flush.service",
            "systemd-sysusers.service",
            "systemd-remount-fs.service",
            "systemd-tmpfiles-setup.service",
            "systemd-tmpfiles-setup-dev.service",
            "systemd-update-utmp.service",
            "systemd-sysctl.service",
        }, active

    test = Test(
        name="services",
        machines={
            "server": {
                "units": {"web.service": WEB_UNIT, "broken.service": BROKEN_UNIT},
                "files": {
                    "/srv/www/index.html": "hello from herd\n",
                    "/etc/app.conf": "mode=test\n",
                    "/srv/secret": {"content": b"s", "mode": 0o600},
                },
            },
            "client": {},
        },
        script=script,
    )
    outcome = run(test, tmp_path)
    assert outcome.passed, outcome.error
