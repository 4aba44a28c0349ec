"""What a VM needs inside, on top of the host image: herd's agent, its network set up, a console.

A VM sees the same root file system as a container, assembled on the host and shared over virtio-fs.
Unlike a container's, its network interfaces live in its own kernel: a unit configures them from a
script herd writes, before network.target. Its agent is herd's own command agent, run by the
guest's Python on a virtio-serial port. udev is masked: the initramfs has loaded the drivers the
VM needs, interfaces keep their kernel names, and under TCG udev's coldplug alone costs seconds. So
are the units that load kernel modules or mount debugging file systems: a test VM has no use for
them, and each costs a few tenths of a second of a TCG guest's CPU. Its journal goes to the run's
output directory, as a container's does.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from herd.plugin import Attachment, HerdError, LaunchPlan, agent, hostimage

AGENT_PORT = "herd.agent"
AGENT_PATH = "/etc/herd/linux/agent.py"
GUEST_PYTHON = "/usr/bin/python3"
NETWORK_SCRIPT = "/etc/herd/network.sh"
MASKED = (
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    # what a test VM has no use for, and what costs a tenth of a second or more each under TCG
    "systemd-binfmt.service",
    "systemd-random-seed.service",
    "systemd-sysusers.service",
    "systemd-update-utmp.service",
    "systemd-modules-load.service",
    "modprobe@.service",
    "kmod-static-nodes.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "dev-hugepages.mount",
)
# The test's commands run in the agent's unit. They are bounded by the machine's `pids` alone, as in
# a container, not by systemd's default share of it for a unit (DefaultTasksMax, 15%). One that the
# guest's OOM killer ends (a command past the machine's `memory`) must not make systemd stop the
# unit, and the agent with it, as its default OOMPolicy=stop would: the command's caller would never
# hear of it.
AGENT_UNIT = f"""[Unit]
Description=herd: the command agent
DefaultDependencies=no

[Service]
ExecStart={GUEST_PYTHON} -I -S {AGENT_PATH} --port {AGENT_PORT}
Restart=always
RestartSec=0
TasksMax=infinity
OOMPolicy=continue
"""
NETWORK_UNIT = f"""[Unit]
Description=herd: the machine's network interfaces
DefaultDependencies=no
Before=network-pre.target network.target network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh {NETWORK_SCRIPT}
"""


def network_script(attachments: tuple[Attachment, ...]) -> str:
    """Shell that names each NIC (found by its MAC) as planned, gives it its addresses, brings it up."""
    lines = ["set -e", "ip link set lo up"]
    for attachment in attachments:
        name = shlex.quote(attachment.guest_link)
        find = f'if [ "$(cat $path/address)" = {attachment.mac} ]; then nic=${{path##*/}}; fi'
        lines += [
            f"for path in /sys/class/net/*; do {find}; done",
            f'[ "$nic" = {name} ] || ip link set dev "$nic" name {name}',
        ]
        for address in attachment.addresses:
            lines.append(f"ip addr add {address} dev {name}" + (" nodad" if ":" in address else ""))
        lines.append(f"ip link set {name} up")
    return "\n".join(lines) + "\n"


def prepare(plan: LaunchPlan) -> None:
    """Put herd's agent, units and masks into the machine's root."""
    if not Path(GUEST_PYTHON).exists():
        raise HerdError(f"VMs run herd's agent with the image's {GUEST_PYTHON}: apt-get install python3")
    hostimage.place_file(plan.root, AGENT_PATH, Path(agent.__file__).read_bytes(), 0o644)
    hostimage.place_file(plan.root, NETWORK_SCRIPT, network_script(plan.attachments), 0o755)
    hostimage.add_unit(plan.root, "herd-agent.service", AGENT_UNIT)
    hostimage.add_unit(plan.root, "herd-network.service", NETWORK_UNIT)
    for unit in MASKED:
        hostimage.mask_unit(plan.root, unit)
