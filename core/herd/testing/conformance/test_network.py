"""Networking between two machines of the backend: names, addresses, ICMP and TCP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from herd.run.machine import Machine
    from herd.testing.pytest_plugin import Herd


SERVE = "nohup python3 -m http.server 8080 --directory /srv >/dev/null 2>&1 &"
FETCH = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://{host}:8080/page\").read().decode())'"


@pytest.mark.herd(machines={"alpha": {"files": {"/srv/page": "served by alpha\n"}}, "beta": {}})
def test_machines_reach_each_other_by_name(herd: Herd, alpha: Machine, beta: Machine) -> None:
    herd.start_all()
    alpha.succeed("ping -c 1 -W 5 beta")
    beta.succeed("ping -c 1 -W 5 alpha")
    assert beta.succeed("getent hosts alpha").split()[1] == "alpha"
    alpha.succeed(SERVE)
    alpha.wait_for_open_port(8080, timeout=30)
    assert beta.wait_until_succeeds(FETCH.format(host="alpha"), timeout=30).strip() == "served by alpha"
    alpha.succeed("pkill -f '[h]ttp.server 8080'")  # the bracket keeps pkill off its own shell
    alpha.wait_for_closed_port(8080, timeout=30)
