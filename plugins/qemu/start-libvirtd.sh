#!/usr/bin/env bash
# Starts libvirtd (and virtlogd, which keeps its VMs' logs) for herd's qemu-libvirt backend, as root,
# on a host where Debian's libvirt-daemon-system is installed. Idempotent: does nothing when
# qemu:///system already answers. Where systemd is PID 1 it asks systemd; elsewhere (a container,
# a CI runner) it starts both daemons itself. Neither needs D-Bus: libvirtd then manages cgroups
# directly and herd learns of its domains' ends through libvirt's own events.
set -euo pipefail
URI=qemu:///system
LOG=/var/log/libvirt/libvirtd.log
# libvirtd daemonizes each QEMU, whose parent then becomes the nearest "subreaper" ancestor, or
# PID 1; and it waits, when a domain stops, until QEMU's process is gone, zombie included. A PID 1
# that is not a real init reaps orphans late (seconds, in a firecracker VM) or never (a shell in a
# container): every stop of a VM would wait that long. So without systemd the daemons run under
# this subreaper, which reaps every orphan below it at once and ends when they have all ended.
REAPER='
import ctypes, os, subprocess, sys
PR_SET_CHILD_SUBREAPER = 36
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
    sys.exit("start-libvirtd.sh: cannot become a subreaper: " + os.strerror(ctypes.get_errno()))
for command in sys.argv[1:]:
    subprocess.run(command, shell=True, check=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
'

answers() { virsh -c "$URI" uri >/dev/null 2>&1; }
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Where no udev runs, /dev/kvm keeps the group it was made with; Debian's udev rules give it to
# the group kvm, that of libvirt's QEMU user. libvirt probes QEMU's capabilities as root and finds
# KVM; when its QEMU user cannot open /dev/kvm, libvirt takes every cached probe for outdated and
# probes again at each look-up: a dozen times, 10 s, for each domain it starts.
if [ "$(id -u)" -eq 0 ] && [ -c /dev/kvm ] && getent group kvm >/dev/null \
    && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
    chgrp kvm /dev/kvm
fi
if answers; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "start-libvirtd.sh: run me as root" >&2
    exit 1
fi
if ! command -v libvirtd >/dev/null; then
    echo "start-libvirtd.sh: libvirtd is not installed: apt-get install libvirt-daemon-system" >&2
    exit 1
fi
if [ -d /run/systemd/system ]; then
    systemctl start virtlogd.socket libvirtd.socket libvirtd.service
else
    # The package's postinst makes these; make sure of them in case it ran in an image build.
    mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /run/libvirt
    commands=()
    running /run/virtlogd.pid || commands+=("virtlogd --daemon")
    # Without systemd, libvirtd logs nowhere unless told: to a file, for when a domain fails.
    running /run/libvirtd.pid || commands+=("LIBVIRT_LOG_OUTPUTS='3:file:$LOG' libvirtd --daemon")
    setsid python3 -c "$REAPER" "${commands[@]}" </dev/null >/dev/null 2>>"$LOG" &
fi
for _ in $(seq 100); do
    answers && exit 0
    sleep 0.1
done
echo "start-libvirtd.sh: libvirtd does not answer at $URI: see $LOG" >&2
exit 1
