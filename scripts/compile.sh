#!/bin/sh
# Builds self-contained binaries of the commands for x86_64 and aarch64 (the
# Raspberry Pi) with `deno compile`. Worker modules are loaded by URL at run
# time, so they are embedded with --include. `deno compile` downloads its
# `denort` runtime for each target: on a machine without access to
# dl.deno.land this fails at "Setting up base binary" after type checking;
# set DENORT_BIN to a local denort of the target to build offline.
set -eu
cd "$(dirname "$0")/.."
# The deno on PATH, else the one `npm ci` installed.
deno=$(command -v deno || echo node_modules/deno/deno)
workers="--include transport/io_worker.ts"
mkdir -p dist
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
  arch=${target%%-*}
  for command in server:server/main.ts:server get:scripts/get.ts:client; do
    name=${command%%:*}
    rest=${command#*:}
    entry=${rest%%:*}
    permissions=${rest#*:}
    echo "compile: flowsched-$name for $target"
    # shellcheck disable=SC2086
    "$deno" compile -P="$permissions" $workers --target "$target" -o "dist/flowsched-$name-$arch" "$entry"
  done
done
