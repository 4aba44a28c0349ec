#!/bin/bash
# The raw baseline of bench/ping.py: what herd does for examples/ping.py, as a plain shell script.
# Two systemd-nspawn containers on the host's /usr with copy-on-write /etc and /var, each in a
# cgroup of its own (as herd, since there is no systemd to ask for a scope), on one bridge; each
# pings the other by name; both halt; everything is removed.
set -eu
W=$(mktemp -d /tmp/rawping.XXXXXX)
BR=rawbr$$
HIERARCHIES=$(awk '$3 == "cgroup2" || ($3 == "cgroup" && $4 ~ /name=systemd/) {print $2}' /proc/self/mounts)
ip link add $BR type bridge && ip link set $BR up
# where a Docker engine set FORWARD to DROP, bridged frames need an ACCEPT rule of their own, as herd adds
FW=""
if iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'; then
  FW="FORWARD -i $BR -o $BR -j ACCEPT"; iptables -I $FW
fi
prep() { # name address
  local r=$W/$1
  mkdir -p $r/root/{usr,etc,var,tmp,run,root,home,proc,sys,dev} $r/etc/systemd/system $r/var
  ln -s usr/bin $r/root/bin; ln -s usr/sbin $r/root/sbin; ln -s usr/lib $r/root/lib; ln -s usr/lib64 $r/root/lib64
  cp /etc/os-release $r/root/etc/
  echo $1 > $r/etc/hostname
  printf '127.0.0.1 localhost\n192.168.1.1 m1\n192.168.1.2 m2\n' > $r/etc/hosts
  head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' > $r/etc/machine-id
  for d in /etc/systemd/system/*.wants; do
    mkdir $r/etc/systemd/system/${d##*/}; setfattr -n trusted.overlay.opaque -v y $r/etc/systemd/system/${d##*/}
  done
  printf '[Unit]\nRequires=basic.target\nAfter=basic.target\n' > $r/etc/systemd/system/raw.target
  ln -s raw.target $r/etc/systemd/system/default.target
  for h in $HIERARCHIES; do mkdir -p $h/raw$$/$1; done
  ip netns add raw$$-$1
  ip link add v$$$1 type veth peer name eth0 netns raw$$-$1
  ip link set v$$$1 master $BR up
  ip -n raw$$-$1 addr add $2/24 dev eth0; ip -n raw$$-$1 link set eth0 up; ip -n raw$$-$1 link set lo up
}
boot() {
  (
    for h in $HIERARCHIES; do echo $BASHPID > $h/raw$$/$1/cgroup.procs; done
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q --register=no --keep-unit -D $W/$1/root -M $1 \
      --bind-ro=/usr --overlay=/etc:$W/$1/etc:/etc --overlay=/var:$W/$1/var:/var \
      --network-namespace-path=/run/netns/raw$$-$1 -b >$W/$1.log 2>&1
  ) &
  echo $! > $W/$1.pid
}
ready() { # wait until the container's systemd has booted; print its PID
  local p c
  p=$(cat $W/$1.pid)
  until c=$(pgrep -P $p -x systemd); do sleep 0.01; done
  until case $(nsenter -t $c -a systemctl is-system-running 2>/dev/null) in running|degraded) true;; *) false;; esac
  do sleep 0.01; done
  echo $c
}
prep m1 192.168.1.1 & P1=$!; prep m2 192.168.1.2 & P2=$!
wait $P1; wait $P2  # each by its PID: a failed preparation stops the script
boot m1; boot m2
L1=$(ready m1); L2=$(ready m2)
nsenter -t $L1 -a ping -c1 -q m2 >/dev/null
nsenter -t $L2 -a ping -c1 -q m1 >/dev/null
kill $(cat $W/m1.pid) $(cat $W/m2.pid); wait
ip netns del raw$$-m1; ip netns del raw$$-m2; ip link del $BR
[ -z "$FW" ] || iptables -D $FW
for h in $HIERARCHIES; do find $h/raw$$ -depth -type d -exec rmdir {} +; done
rm -rf $W
