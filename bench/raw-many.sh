#!/bin/bash
# The raw baseline of bench/many.py: N systemd-nspawn containers on the host's /usr, on one bridge,
# each in a cgroup of its own (as herd), all started at once; once all are ready, each runs one
# command (a ping to m0 by name); all halt; everything is removed. Prints the memory (PSS, in KiB)
# that the running containers took on its last line (see pss.py).
#   raw-many.sh N
set -eu
N=$1
W=$(mktemp -d /tmp/rawmany.XXXXXX)
BR=rawbr$$
HIERARCHIES=$(awk '$3 == "cgroup2" || ($3 == "cgroup" && $4 ~ /name=systemd/) {print $2}' /proc/self/mounts)
# as herd does, and as DESIGN §10 measured: past about 25 containers the default quota stalls boots
[ "$(cat /proc/sys/fs/inotify/max_user_instances)" -ge 1024 ] || echo 1024 > /proc/sys/fs/inotify/max_user_instances
ip link add $BR type bridge && ip link set $BR up
# where a Docker engine set FORWARD to DROP, bridged frames need an ACCEPT rule of their own, as herd adds
FW=""
if iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'; then
  FW="FORWARD -i $BR -o $BR -j ACCEPT"; iptables -I $FW
fi
hosts() { echo "127.0.0.1 localhost"; for i in $(seq 0 $((N - 1))); do echo "192.168.1.$((i + 1)) m$i"; done; }
hosts > $W/hosts
prep() { # index
  local n=m$1 r=$W/m$1
  mkdir -p $r/root/{usr,etc,var,tmp,run,root,home,proc,sys,dev} $r/etc/systemd/system $r/var
  ln -s usr/bin $r/root/bin; ln -s usr/sbin $r/root/sbin; ln -s usr/lib $r/root/lib; ln -s usr/lib64 $r/root/lib64
  cp /etc/os-release $r/root/etc/
  echo $n > $r/etc/hostname
  cp $W/hosts $r/etc/hosts
  head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' > $r/etc/machine-id
  for d in /etc/systemd/system/*.wants; do
    mkdir $r/etc/systemd/system/${d##*/}; setfattr -n trusted.overlay.opaque -v y $r/etc/systemd/system/${d##*/}
  done
  printf '[Unit]\nRequires=basic.target\nAfter=basic.target\n' > $r/etc/systemd/system/raw.target
  ln -s raw.target $r/etc/systemd/system/default.target
  for h in $HIERARCHIES; do mkdir -p $h/raw$$/$n; done
  ip netns add raw$$-$n
  ip link add v$$x$1 type veth peer name eth0 netns raw$$-$n
  ip link set v$$x$1 master $BR up
  ip -n raw$$-$n addr add 192.168.1.$(($1 + 1))/24 dev eth0
  ip -n raw$$-$n link set eth0 up; ip -n raw$$-$n link set lo up
}
boot() { # index
  local n=m$1
  (
    for h in $HIERARCHIES; do echo $BASHPID > $h/raw$$/$n/cgroup.procs; done
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q --register=no --keep-unit -D $W/$n/root -M $n \
      --bind-ro=/usr --overlay=/etc:$W/$n/etc:/etc --overlay=/var:$W/$n/var:/var \
      --network-namespace-path=/run/netns/raw$$-$n -b >$W/$n.log 2>&1
  ) &
  echo $! > $W/$n.pid
}
ready() { # index: wait until the container's systemd has booted; print its PID
  local p c
  p=$(cat $W/m$1.pid)
  until c=$(pgrep -P $p -x systemd); do sleep 0.05; done
  until case $(nsenter -t $c -a systemctl is-system-running 2>/dev/null) in running|degraded) true;; *) false;; esac
  do sleep 0.05; done
  echo $c
}
# wait on each preparation by its PID, so that one that fails stops the script (a bare `wait` would not)
preps=()
for i in $(seq 0 $((N - 1))); do prep $i & preps+=($!); done
for p in "${preps[@]}"; do wait "$p"; done
for i in $(seq 0 $((N - 1))); do boot $i; done
for i in $(seq 0 $((N - 1))); do ready $i > $W/m$i.leader; done
USED=$(python3 "$(dirname "$0")/pss.py" "/raw$$/")
for i in $(seq 0 $((N - 1))); do nsenter -t $(cat $W/m$i.leader) -a ping -c1 -W5 -q m0 >/dev/null; done
kill $(cat $W/m*.pid); wait
for i in $(seq 0 $((N - 1))); do ip netns del raw$$-m$i; done
ip link del $BR
[ -z "$FW" ] || iptables -D $FW
for h in $HIERARCHIES; do find $h/raw$$ -depth -type d -exec rmdir {} +; done
rm -rf $W
echo "$USED"
