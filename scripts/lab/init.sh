#!/bin/sh
# PID 1 of the lab's User-Mode Linux kernel (started by scripts/lab/lab.ts).
# $1 is the run directory on the host filesystem. It holds env.sh (exports for
# the command), links.sh (calls to `shape`), cmd.sh (the command) and, when
# the command has run, `exit` with its exit code. Init's own output goes to
# the console, which the host keeps as console.log for error reports; the
# command's stdout and stderr go to /dev/tty1 and /dev/tty2, which the host
# wires to its own stdout and stderr.
RUN=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

halt_now() {
  sync
  poweroff -f >/dev/null 2>&1
  echo o >/proc/sysrq-trigger
  halt -f
}

die() {
  echo "lab-init: $*"
  halt_now
}

[ -d "$RUN" ] || die "run directory '$RUN' is not visible inside the lab"

mount -t proc proc /proc || die "cannot mount /proc"
mount -t sysfs sys /sys || die "cannot mount /sys"

# The host directories the command needs: the run directory, its working
# directory, the running Deno's directory, DENO_DIR and HOME. Any of them may
# lie under /tmp or /run.
needed=$(
  # shellcheck source=/dev/null
  . "$RUN/env.sh" && printf '%s\n' "$RUN" "$LAB_CWD" "$LAB_DENO_DIR" "$DENO_DIR" "$HOME"
)

# fresh_tmpfs DIR: a tmpfs on DIR that still shows, at their own paths, the
# needed host directories under DIR. It is filled while mounted in the run
# directory (the old DIR is still reachable then) and moved onto DIR. With -n,
# mount(8) keeps no record in /run/mount/utab: moving onto /run fails there.
fresh_tmpfs() {
  stage=$RUN/stage
  mkdir -p "$stage" && mount -n -t tmpfs tmpfs "$stage" || die "cannot mount a tmpfs for $1"
  printf '%s\n' "$needed" | while IFS= read -r dir; do
    case $dir in
      "$1"/*)
        [ -d "$dir" ] || continue
        mkdir -p "$stage${dir#"$1"}" && mount -n --bind "$dir" "$stage${dir#"$1"}" ||
          die "cannot keep $dir visible inside the lab"
        ;;
    esac
  done
  mount -n --move "$stage" "$1" || die "cannot mount a tmpfs on $1"
}
# /tmp and /run on tmpfs: private to this boot, and `ip netns` needs /run.
fresh_tmpfs /tmp
fresh_tmpfs /run

# modprobe wants <root>/lib/modules/<release>; the modules live elsewhere.
release=$(uname -r)
mods=/usr/lib/uml/modules/$release
[ -d "$mods" ] || die "no kernel modules at $mods (apt-get install user-mode-linux)"
mkdir -p "/tmp/modroot/lib/modules/$release"
mount --bind "$mods" "/tmp/modroot/lib/modules/$release" || die "cannot bind $mods"
# hmac: SCTP's cookie uses hmac(md5); without it SCTP sockets in a new
# network namespace fail with ENOSYS.
modprobe -d /tmp/modroot -a hmac sctp veth sch_netem sch_tbf || die "modprobe failed"
# Modules the kernel asks for on its own (ip_vs and its schedulers for
# ipvsadm, nf_tables parts for nft) come through this wrapper.
printf '#!/bin/sh\nexec /sbin/modprobe -d /tmp/modroot "$@"\n' >/tmp/modroot/modprobe &&
  chmod 755 /tmp/modroot/modprobe &&
  echo /tmp/modroot/modprobe >/proc/sys/kernel/modprobe || die "cannot set the kernel's modprobe"

# Server namespaces: server (link ps), then server2 (link ps2), ... up to LAB_SERVERS.
servers=$(
  # shellcheck source=/dev/null
  . "$RUN/env.sh" && echo "${LAB_SERVERS:-1}"
)
server_ns() { if [ "$1" -eq 1 ]; then echo server; else echo "server$1"; fi; }
server_link() { if [ "$1" -eq 1 ]; then echo ps; else echo "ps$1"; fi; }

# Kernel SCTP over a 65536-byte-MTU loopback crawls: use 1500 everywhere.
# Link cp joins client and proxy; link ps joins proxy and server (psK: proxy
# and serverK, subnet 10.10.K+1.0/24); each end is named <link>-<namespace>. Batches, as every process start is slow in UML.
# Distinct ifindexes: a veth end whose ifindex equals its peer's (both 2 in
# fresh namespaces) gets its carrier seen up to a second late, and drops
# every packet until then.
{
  echo "link set lo mtu 1500 up"
  echo "netns add client"
  echo "netns add proxy"
  echo "link add cp-client index 11 netns client type veth peer name cp-proxy index 12 netns proxy"
  k=1
  while [ "$k" -le "$servers" ]; do
    ns=$(server_ns $k) link=$(server_link $k)
    echo "netns add $ns"
    echo "link add $link-proxy index $((10 * k + 11)) netns proxy type veth" \
      "peer name $link-$ns index $((10 * k + 12)) netns $ns"
    k=$((k + 1))
  done
} | ip -b - || die "cannot create the namespaces and links"
ip -n client -b - <<EOF || die "cannot set up the client namespace"
link set lo mtu 1500 up
addr add 10.10.1.1/24 dev cp-client
link set cp-client up
route add default via 10.10.1.2
EOF
{
  echo "link set lo mtu 1500 up"
  echo "addr add 10.10.1.2/24 dev cp-proxy"
  echo "link set cp-proxy up"
  k=1
  while [ "$k" -le "$servers" ]; do
    link=$(server_link $k)
    echo "addr add 10.10.$((k + 1)).1/24 dev $link-proxy"
    echo "link set $link-proxy up"
    k=$((k + 1))
  done
} | ip -n proxy -b - || die "cannot set up the proxy namespace"
k=1
while [ "$k" -le "$servers" ]; do
  ns=$(server_ns $k) link=$(server_link $k)
  ip -n "$ns" -b - <<EOF || die "cannot set up the $ns namespace"
link set lo mtu 1500 up
addr add 10.10.$((k + 1)).2/24 dev $link-$ns
link set $link-$ns up
route add default via 10.10.$((k + 1)).1
EOF
  k=$((k + 1))
done
ip netns exec proxy sysctl -qw net.ipv4.ip_forward=1 || die "cannot enable forwarding in proxy"

# shape LINK NETEM_ARGS [TBF_ARGS]: emulate a WAN on both ends of LINK. netem
# delays (its queue is large so it never drops on its own); tbf under it is
# the rate bottleneck, where the queue builds.
shape() {
  case $1 in
    cp) ends="client proxy" ;;
    ps) ends="proxy server" ;;
    ps[2-9]) ends="proxy server${1#ps}" ;;
    *) die "unknown link '$1'" ;;
  esac
  for ns in $ends; do
    # shellcheck disable=SC2086 # the arguments are word lists
    tc -n "$ns" qdisc add dev "$1-$ns" root handle 1: netem $2 limit 1000000 &&
      if [ -n "$3" ]; then
        tc -n "$ns" qdisc add dev "$1-$ns" parent 1:1 handle 10: tbf $3
      fi || die "cannot shape link $1 in $ns"
  done
}
# shellcheck source=/dev/null
. "$RUN/links.sh"

# A veth end drops every packet until the kernel's link watcher has seen its
# carrier: make sure it has.
wait_up() {
  i=0
  while [ $i -lt 100 ]; do
    case $(ip -n "$1" -br link show type veth) in
      *DOWN* | "") ;;
      *) return 0 ;;
    esac
    sleep 0.05
    i=$((i + 1))
  done
  die "the veth links in namespace $1 did not come up"
}
wait_up client
wait_up proxy
k=1
while [ "$k" -le "$servers" ]; do
  wait_up "$(server_ns $k)"
  k=$((k + 1))
done

# Raw ttys pass the command's bytes through unchanged (no \n -> \r\n).
stty -F /dev/tty1 raw -echo && stty -F /dev/tty2 raw -echo || die "cannot set up /dev/tty1, /dev/tty2"
(
  # shellcheck source=/dev/null
  . "$RUN/env.sh"
  cd "$LAB_CWD" || exit 125
  exec sh "$RUN/cmd.sh"
) </dev/null >/dev/tty1 2>/dev/tty2
echo $? >"$RUN/exit"
halt_now
