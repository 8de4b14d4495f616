#!/bin/sh
# Installs what flowsched needs, idempotently, and says what it installs:
# Deno (pinned, from the npm package `deno`) and the Debian packages for
# kernel SCTP, userspace SCTP, the User-Mode Linux lab and the tests.
set -eu
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="lksctp-tools libsctp1 libsctp-dev libusrsctp2 libusrsctp-dev \
user-mode-linux kmod iproute2 procps util-linux python3 gcc libc6-dev curl wrk chromium nginx-light"

# node_modules/.package-lock.json is what npm last installed; reinstall when the lock is newer.
# `npm ci` installs exactly what package-lock.json pins and never rewrites it
# (`npm install` would, leaving a test run with a dirty work tree). The lock
# lists every platform's optional @deno/* binary, which `npm ci` requires.
# .npmrc turns off node_modules/.bin, so Deno is node_modules/deno/deno.
if [ ! -x node_modules/deno/deno ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing Deno and npm packages (versions pinned in package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi

missing=""
for pkg in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "bootstrap: installing Debian packages:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: need root to install Debian packages; run: sudo apt-get install -y$missing" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
