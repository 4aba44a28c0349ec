"""Letting a run's bridged traffic through a host firewall that would drop it.

With br_netfilter loaded (`net.bridge.bridge-nf-call-iptables=1`, as a Docker engine leaves it),
frames crossing a Linux bridge traverse the iptables FORWARD chain, whose policy Docker sets to DROP.
When that chain could drop anything (a policy other than ACCEPT, or any rule in it), herd inserts
one ACCEPT rule per bridge, matching traffic that enters and leaves that same bridge only, tagged
with the run's id (`herd:<run id>`), and removes it at teardown; what a killed run left is found
by that tag. Nothing is routed or NATed.

The rules go through the `iptables`/`ip6tables` commands, so that they land in whichever backend
(legacy or nf_tables) the host's other firewall users, Docker included, use.
Each runs in a process group of its own: a Ctrl-C at herd's terminal is herd's to act on, and
must not kill an `iptables` halfway through a run's setup.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from herd.plugin import HerdError

log = logging.getLogger("herd.bridge.firewall")
COMMANDS = ("iptables", "ip6tables")
TAG = "herd:"
BRIDGE_SYSCTLS = {
    "iptables": Path("/proc/sys/net/bridge/bridge-nf-call-iptables"),
    "ip6tables": Path("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
}


def filtering_commands() -> list[str]:
    """The firewall commands whose chains see bridged frames on this host."""
    commands = []
    for command, sysctl in BRIDGE_SYSCTLS.items():
        try:
            if sysctl.read_text().strip() == "1":
                commands.append(command)
        except FileNotFoundError:  # br_netfilter is not loaded: bridged frames skip iptables
            continue
    return commands


def forward_chain_filters(command: str) -> bool:
    """Whether the FORWARD chain of `command` has a non-ACCEPT policy or any rule at all."""
    listing = subprocess.run(
        [command, "-w", "-S", "FORWARD"], capture_output=True, text=True, check=False, process_group=0
    )
    if listing.returncode != 0:
        raise HerdError(f"cannot read the FORWARD chain with {command}: {listing.stderr.strip()}")
    return listing.stdout.strip() != "-P FORWARD ACCEPT"


def _rule(bridge: str, run_id: str) -> list[str]:
    return [
        "FORWARD",
        "-i",
        bridge,
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        f"{TAG}{run_id}",
        "-j",
        "ACCEPT",
    ]


class BridgeRules:
    """The ACCEPT rules of one run; `remove_all` undoes every rule `allow` added."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.added: list[tuple[str, str]] = []

    def allow(self, bridge: str) -> None:
        for command in filtering_commands():
            if shutil.which(command) is None:
                log.warning(
                    "bridged frames pass %s (br_netfilter is loaded) but the %s command is missing: "
                    "if the FORWARD chain drops them, machines cannot reach each other; install iptables",
                    command,
                    command,
                )
                continue
            if not forward_chain_filters(command):
                continue
            added = subprocess.run(
                [command, "-w", "-I", *_rule(bridge, self.run_id)],
                capture_output=True,
                text=True,
                check=False,
                process_group=0,
            )
            if added.returncode != 0:
                raise HerdError(
                    f"cannot let bridge {bridge} through {command} (status {added.returncode}): "
                    f"{added.stderr.strip()}"
                )
            self.added.append((command, bridge))

    def remove_all(self) -> None:
        while self.added:
            command, bridge = self.added.pop()
            subprocess.run(
                [command, "-w", "-D", *_rule(bridge, self.run_id)],
                check=False,
                capture_output=True,
                process_group=0,
            )


def tagged_rules(run_id: str | None = None) -> list[tuple[str, str]]:
    """(command, rule as `-S` prints it) of the rules tagged with run `run_id`, or with any run."""
    found = []
    for command in COMMANDS:
        if shutil.which(command) is None:
            continue
        listing = subprocess.run(
            [command, "-w", "-S"], capture_output=True, text=True, check=False, process_group=0
        ).stdout
        tag = f"{TAG}{run_id}" if run_id else TAG
        found += [(command, rule) for rule in listing.splitlines() if tag in rule]
    return found


def delete_listed(command: str, rule: str) -> None:
    """Delete a rule as `-S` listed it: `-A CHAIN ...` becomes `-D CHAIN ...`, its comment unquoted."""
    arguments = rule.split()
    arguments[0] = "-D"
    subprocess.run(
        [command, "-w", *(a.strip('"') for a in arguments)], capture_output=True, check=False, process_group=0
    )
