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
# systemd-container: systemd-nspawn; iptables: herd lets its bridges through a FORWARD chain that
# drops (Docker's); the rest are what the examples and tests run inside machines.
apt-get install -y -qq --no-install-recommends \
    systemd systemd-container iproute2 iptables iputils-ping procps tar bash \
    python3 python3-venv python3-pip >/dev/null
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# compat mode: a plain path entry instead of an import hook, which costs every herd run ~10 ms
.venv/bin/pip install -q --config-settings editable_mode=compat -e '.[test]' -e plugins/nspawn
echo "bootstrap.sh: herd is installed in $(pwd)/.venv"
