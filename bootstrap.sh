#!/usr/bin/env bash
# Sets herd up for use and development on Debian 12, as root: the system packages its machines and
# tests need, and a virtual environment (.venv) holding the core and the in-tree plugins.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap.sh: run me as root: herd boots containers and makes network links" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# systemd-container: systemd-nspawn; docker.io: the engine of the Docker backend (its machines'
# base image is imported from the host: nothing is ever pulled); debootstrap: the Docker tests
# make a local image of their own from Debian's packages; iptables: herd lets its bridges through
# a FORWARD chain that drops (Docker's); qemu-system-x86 (with its virtiofsd), linux-image-amd64 and
# busybox-static: the QEMU backend's emulator, the kernel its VMs boot and their initramfs's shell;
# libvirt-daemon-system: the libvirtd of its qemu-libvirt engine, whose libvirt-python builds
# against libvirt-dev with pkg-config, gcc and python3-dev; attr: the raw baselines of bench/ mark
# overlay directories opaque with setfattr; mmdebstrap: herd-images builds `debian:` images with it
# (from the mirror in the host's apt sources); nix-bin: the tests check nix/ with nix-instantiate;
# the rest are what the examples and tests run inside machines.
apt-get install -y -qq --no-install-recommends \
    systemd systemd-container docker.io debootstrap qemu-system-x86 linux-image-amd64 busybox-static \
    libvirt-daemon-system libvirt-dev pkg-config gcc python3-dev attr mmdebstrap nix-bin \
    iproute2 iptables iputils-ping procps tar bash python3 python3-venv python3-pip >/dev/null
# Where systemd is not PID 1 (a container, a CI runner) nothing has started the engine: start it,
# remapping its containers' root to unprivileged host ids (dockerd makes the user dockremap and its
# subordinate ids), which herd's Docker machines need to be confined. An engine that runs already
# keeps its own settings: `herd doctor` says how to turn the remapping on.
if ! docker version >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl start docker
    else
        setsid dockerd --userns-remap=default >/var/log/dockerd.log 2>&1 </dev/null &
    fi
    for _ in $(seq 150); do
        docker version >/dev/null 2>&1 && break
        sleep 0.2
    done
    docker version >/dev/null || { echo "bootstrap.sh: dockerd did not start: see /var/log/dockerd.log" >&2; exit 1; }
fi
plugins/qemu/start-libvirtd.sh
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The core's distribution was named `herd`, another project's name on the package index, before it
# became herd-testing: a .venv made before the rename drops it, lest two distributions claim herd.
if .venv/bin/pip show -q herd 2>/dev/null; then
    .venv/bin/pip uninstall -q -y herd
    rm -rf core/herd.egg-info
fi
# compat mode: a plain path entry instead of an import hook, which costs every herd run ~10 ms
.venv/bin/pip install -q --config-settings editable_mode=compat -e '.[test,interactive]' -e plugins/nspawn -e plugins/docker -e plugins/gpu \
    -e 'plugins/qemu[libvirt]' -e plugins/bridge -e 'plugins/images[docker]'
echo "bootstrap.sh: herd is installed in $(pwd)/.venv"
