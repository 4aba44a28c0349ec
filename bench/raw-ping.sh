#!/bin/bash
# Raw baseline: two systemd-nspawn containers on the host's /usr, one bridge, each pings the other.
set -eu
W=$(mktemp -d /tmp/rawping.XXXXXX)
BR=rawbr$$
ip link add $BR type bridge && ip link set $BR up
prep() { # name addr
  local r=$W/$1
  mkdir -p $r/root/{usr,etc,var,tmp,run,root,home,proc,sys,dev} $r/etc/systemd/system $r/var
  ln -s usr/bin $r/root/bin; ln -s usr/sbin $r/root/sbin; ln -s usr/lib $r/root/lib; ln -s usr/lib64 $r/root/lib64
  cp /etc/os-release $r/root/etc/
  echo $1 > $r/etc/hostname
  printf '127.0.0.1 localhost\n192.168.1.1 m1\n192.168.1.2 m2\n' > $r/etc/hosts
  head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' > $r/etc/machine-id
  for d in /etc/systemd/system/*.wants; do mkdir $r/etc/systemd/system/${d##*/}; setfattr -n trusted.overlay.opaque -v y $r/etc/systemd/system/${d##*/}; done
  printf '[Unit]\nRequires=basic.target\nAfter=basic.target\n' > $r/etc/systemd/system/raw.target
  ln -s raw.target $r/etc/systemd/system/default.target
  ip netns add raw$$-$1
  ip link add v$$$1 type veth peer name eth0 netns raw$$-$1
  ip link set v$$$1 master $BR up
  ip -n raw$$-$1 addr add $2/24 dev eth0; ip -n raw$$-$1 link set eth0 up; ip -n raw$$-$1 link set lo up
}
boot() {
  systemd-nspawn -q --register=no --keep-unit --notify-ready=yes -D $W/$1/root -M $1 --bind-ro=/usr \
   --overlay=/etc:$W/$1/etc:/etc --overlay=/var:$W/$1/var:/var --network-namespace-path=/run/netns/raw$$-$1 -b >$W/$1.log 2>&1 &
  echo $! > $W/$1.pid
}
leader() { # wait until the container's systemd runs and is ready
  local p; p=$(cat $W/$1.pid)
  until c=$(pgrep -P $p -x systemd); do sleep 0.01; done
  until nsenter -t $c -a systemctl is-system-running -q 2>/dev/null || [ "$(nsenter -t $c -a systemctl is-system-running 2>/dev/null)" = degraded ]; do sleep 0.01; done
  echo $c
}
prep m1 192.168.1.1 & prep m2 192.168.1.2 & wait
boot m1; boot m2
L1=$(leader m1); L2=$(leader m2)
nsenter -t $L1 -a ping -c1 -q m2 >/dev/null
nsenter -t $L2 -a ping -c1 -q m1 >/dev/null
kill $(cat $W/m1.pid) $(cat $W/m2.pid); wait
ip netns del raw$$-m1; ip netns del raw$$-m2; ip link del $BR
rm -rf $W
