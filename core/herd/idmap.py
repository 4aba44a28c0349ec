"""The host ids that the users of a confined machine are.

A backend that confines its machines in user namespaces maps a machine's ids 0…65535 to host ids
`BASE`…`BASE + 65535`: root in a machine is host id `BASE`, which owns nothing on the host. Every
machine of every run shares the one range, so the host image's files can be prepared once for it
(see `herd.hostsnapshot`). The range lies in the ids that systemd's documentation leaves unused
(above its containers' 524288…1879048191 and below its "foreign" range at 2147352576), so it meets
neither a container that systemd-nspawn picks a range for nor a regular user.
"""

from __future__ import annotations

BASE = 0x7E000000  # 2113929216
COUNT = 65536
# What an id the range cannot hold becomes: the machine's `nobody`.
OVERFLOW = 65534


def shifted(host_id: int, shift: int) -> int:
    """`host_id` as a machine whose root is host id `shift` owns it (`shift` 0: unchanged)."""
    if shift == 0:
        return host_id
    return shift + (host_id if host_id < COUNT else OVERFLOW)
