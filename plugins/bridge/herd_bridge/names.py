"""What the bridge networks of a run are called on the host, and their NICs' MAC addresses.

Every name starts with `herd<run id>`, so that two runs never collide and what a killed run left is
found by its id; each fits the kernel's 15 characters for up to 46,656 machines and 36 networks
(one base-36 digit), the most a test may declare.
"""

from __future__ import annotations

from herd.plugin import RUN_ID_LENGTH

LINK_PREFIX = "herd"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if not number:
            return text


def run_prefix(run_id: str) -> str:
    """The start of the name of every link of the run."""
    return f"{LINK_PREFIX}{run_id}"


def bridge_name(run_id: str, network_index: int) -> str:
    return f"{run_prefix(run_id)}b{_base36(network_index)}"


def host_link_name(run_id: str, machine_index: int, network_index: int) -> str:
    return f"{run_prefix(run_id)}m{_base36(machine_index)}n{_base36(network_index)}"


def gateway_link_name(run_id: str, network_index: int) -> str:
    return f"{run_prefix(run_id)}g{_base36(network_index)}"


def mac_address(network_index: int, machine_index: int) -> str:
    """A locally administered MAC: 02:68:64 ("hd"), the network, then the machine."""
    return f"02:68:64:{network_index:02x}:{machine_index >> 8 & 0xFF:02x}:{machine_index & 0xFF:02x}"


GATEWAY_MAC_INDEX = 0xFFFF  # the gateway's MAC: 02:68:64:<n>:ff:ff


def run_ids_in(names: list[str], prefix: str) -> set[str]:
    """The run ids that follow `prefix` in `names`."""
    return {name[len(prefix) : len(prefix) + RUN_ID_LENGTH] for name in names if name.startswith(prefix)}
