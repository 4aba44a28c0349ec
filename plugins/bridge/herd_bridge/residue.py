"""What a run's bridge networks left on the host, found by the run's id in their names and tags:
links `herd<run id>…` (bridges, the gateways' veths, machines' veths and taps that outlived them)
and firewall rules tagged `herd:<run id>`. Reported, removed, and counted as marks of a run."""

from __future__ import annotations

from herd.plugin import links
from herd_bridge import firewall, names


def leftovers(run_id: str) -> list[str]:
    found = [f"link {name}" for name in links.link_names(names.run_prefix(run_id))]
    return found + [f"{command} rule: {rule}" for command, rule in firewall.tagged_rules(run_id)]


def reap(run_id: str) -> list[str]:
    """Delete the dead run's links and firewall rules; a link gone meanwhile is no error."""
    removed = [
        f"link {name}" for name in links.link_names(names.run_prefix(run_id)) if links.delete_link(name)
    ]
    for command, rule in firewall.tagged_rules(run_id):
        firewall.delete_listed(command, rule)
        removed.append(f"{command} rule: {rule}")
    return removed


def known_runs() -> set[str]:
    ids = names.run_ids_in(links.link_names(names.LINK_PREFIX), names.LINK_PREFIX)
    for _, rule in firewall.tagged_rules():
        ids |= names.run_ids_in(rule.split(firewall.TAG)[1:], "")
    return ids
