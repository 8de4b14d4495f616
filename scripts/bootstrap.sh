#!/bin/sh
# Installs what flowsched needs, idempotently, and says what it installs:
# Deno (pinned, from the npm package `deno`) and the Debian packages for
# kernel SCTP, userspace SCTP, the User-Mode Linux lab and the tests.
set -eu
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="lksctp-tools libsctp1 libsctp-dev libusrsctp2 libusrsctp-dev \
user-mode-linux kmod iproute2 procps util-linux python3 gcc libc6-dev curl wrk chromium nginx-light \
qemu-user libc6-arm64-cross libgcc-s1-arm64-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross iptables ipvsadm ethtool"
# ipvsadm: the IPVS front of the scale-out (scripts/ipvs.ts, tests/scale).
# iptables: the NAT router of the lab's SCTP-over-UDP test (tests/transport/udp_encap_in_lab.ts);
# ethtool: that test turns off the veth's SCTP checksum offload (the why is there).
# qemu-user and the arm64 cross packages run the Raspberry Pi (aarch64) build
# and its struct-layout probes here (tests/deploy, tests/ffi). The Pi bundle
# takes arm64 .debs from apt-get download, so apt must know arm64 too.

# node_modules/.package-lock.json is what npm last installed; reinstall when the lock is newer.
# `npm ci` installs exactly what package-lock.json pins and never rewrites it
# (`npm install` would, leaving a test run with a dirty work tree). The lock
# lists every platform's optional @deno/* binary, which `npm ci` requires.
# .npmrc turns off node_modules/.bin, so Deno is node_modules/deno/deno.
# A node_modules that is a symlink (a git worktree sharing another checkout's)
# is left alone: `npm ci` would empty the directory it points to.
if [ -L node_modules ]; then
  echo "bootstrap: node_modules is a symlink to $(readlink node_modules); not reinstalling through it"
elif [ ! -x node_modules/deno/deno ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing Deno and npm packages (versions pinned in package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi

missing=""
for pkg in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $pkg"
done
add_arm64=""
dpkg --print-foreign-architectures | grep -qx arm64 || add_arm64=yes
if [ -n "$missing" ] || [ -n "$add_arm64" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    fix="sudo apt-get install -y$missing"
    [ -z "$add_arm64" ] || fix="sudo dpkg --add-architecture arm64 && sudo apt-get update && $fix"
    echo "bootstrap: need root to install Debian packages; run: $fix" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -n "$add_arm64" ]; then
    echo "bootstrap: adding the Debian architecture arm64 (for the Raspberry Pi bundle's .debs)"
    dpkg --add-architecture arm64
  fi
  apt-get update -qq
  if [ -n "$missing" ]; then
    echo "bootstrap: installing Debian packages:$missing"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi
