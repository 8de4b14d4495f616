/**
 * `deno task bundle`: what the archive holds, and the x86_64 bundle run
 * natively from an empty directory inside a network namespace with nothing
 * but loopback (`unshare -n`), so nothing can be fetched at run time: its
 * server, its get client and its proxy (to curl) move 100 files intact.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseOptions } from "../../cli/options.ts";
import { SERVER_OPTIONS } from "../../server/config.ts";
import { PROXY_OPTIONS } from "../../proxy/config.ts";
import { pinnedDeno } from "../../scripts/deploy/downloads.ts";
import { TARGETS } from "../../scripts/deploy/targets.ts";
import { needs } from "../_permissions.ts";
import { assertSameFiles, buildBundle, makeFiles, tempDir, unpack, VERSION } from "./_bundle.ts";
import { skipWithReason } from "./_qemu.ts";

const ignore = needs("read", "write", "env", "run");

function canUnshareNetwork(): string | undefined {
  try {
    const probe = new Deno.Command("unshare", { args: ["-n", "true"], stderr: "null" });
    if (probe.outputSync().success) return undefined;
  } catch { /* not installed */ }
  return "unshare -n (a private network namespace) is not permitted here; it needs root";
}

async function output(program: string, args: string[], env?: Record<string, string>) {
  const result = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    stdout: decoder.decode(result.stdout),
    stderr: decoder.decode(result.stderr),
  };
}

Deno.test("bundle --help describes the archive, and a bad target names the valid ones", {
  ignore,
}, async () => {
  const help = await output(Deno.execPath(), ["task", "bundle", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--target <value> .*\(x86_64 \| aarch64\)/);
  assert.match(help.stdout, /flowsched-<version>-<arch>\.tar\.gz/);
  const bad = await output(Deno.execPath(), ["task", "bundle", "--target", "sparc"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bundle: flag "--target": "sparc" is not valid; expected one of/);
});

Deno.test(
  "the x86_64 bundle holds the pinned Deno, the program and its npm packages without the " +
    "benchmarks, the .debs, launchers, systemd units, example configs and INSTALL",
  { ignore },
  async () => {
    const { archive, stderr } = await buildBundle("x86_64");
    assert.match(stderr, /bundle: collecting the program's modules/);
    const archiveName = `flowsched-${VERSION}-x86_64.tar.gz`;
    assert.ok(stderr.includes(`bundle: done: ${archive} (`), stderr);
    assert.match(stderr, / \(\d+\.\d MB\)\n/);
    const bundle = await unpack(archive);
    const names = (dir: string) => [...Deno.readDirSync(join(bundle, dir))].map((e) => e.name);

    const { version } = await pinnedDeno(TARGETS.x86_64);
    const deno = await output(join(bundle, "lib/deno"), ["--version"]);
    assert.match(deno.stdout, new RegExp(`^deno ${version.replaceAll(".", "\\.")} `));

    assert.deepEqual(names("bin").sort(), [
      "flowsched-get",
      "flowsched-ipvs",
      "flowsched-proxy",
      "flowsched-server",
    ]);
    const debs = names("debs").sort();
    assert.equal(debs.length, 2);
    assert.match(debs[0], /^libsctp1_.*_amd64\.deb$/);
    assert.match(debs[1], /^libusrsctp2_.*_amd64\.deb$/);
    assert.deepEqual(names("systemd").sort(), [
      "flowsched-proxy.service",
      "flowsched-server.service",
    ]);
    const install = await Deno.readTextFile(join(bundle, "INSTALL"));
    assert.ok(install.includes(`tar xzf ${archiveName} -C /opt`), "INSTALL names the archive");
    assert.doesNotMatch(install, /@[A-Z_]+@/, "every placeholder filled in");

    const packages = names("app/node_modules");
    for (const name of ["mime-types", "mime-db", "htmlparser2", "entities"]) {
      assert.ok(packages.includes(name), `${name} in app/node_modules`);
    }
    for (const name of ["vega", "vega-lite", "fast-check", "deno", "@types"]) {
      assert.ok(!packages.includes(name), `${name} left out`);
    }
    assert.ok(!names("app/scripts").includes("bench"), "scripts/bench left out");
    assert.deepEqual(names("app/scripts").sort(), ["get.ts", "ipvs.ts", "scale"]);

    // The example configurations pass the commands' own validation.
    await parseOptions(["--config", join(bundle, "etc/server.json")], SERVER_OPTIONS);
    await parseOptions(["--config", join(bundle, "etc/proxy.json")], PROXY_OPTIONS);
  },
);

const OFFLINE_RUN = `
set -eu
ip link set lo up
"$BUNDLE/bin/flowsched-server" --transport usrsctp --port 9000 --root "$SITE" 2>"$OUT/server.log" &
server=$!
"$BUNDLE/bin/flowsched-proxy" --listen 127.0.0.1:8080 --upstream usrsctp://127.0.0.1:9000 \\
  --cache "$OUT/cache" 2>"$OUT/proxy.log" &
proxy=$!
trap 'kill -TERM $server $proxy 2>/dev/null || true' EXIT
tries=0
until grep -q '"listening"' "$OUT/server.log" && grep -q 'association up' "$OUT/proxy.log"; do
  tries=$((tries + 1))
  if [ $tries -gt 1200 ]; then cat "$OUT/server.log" "$OUT/proxy.log" >&2; exit 1; fi
  sleep 0.1
done
first=$1
shift
"$BUNDLE/bin/flowsched-get" "usrsctp://127.0.0.1:9000$first" "$@" -o "$OUT/get/"
for path in "$first" "$@"; do printf 'url = "http://127.0.0.1:8080%s"\\noutput = "%s"\\n' "$path" "$OUT/curl$path"; done \\
  >"$OUT/curl.config"
curl -sS --fail --create-dirs -K "$OUT/curl.config"
kill -TERM $server $proxy
wait $server
wait $proxy
`;

Deno.test({
  name: "the x86_64 bundle in an empty directory serves 100 files to its get client and, " +
    "through its proxy, to curl, with no network but loopback",
  ignore: ignore || skipWithReason("the offline bundle run", canUnshareNetwork()),
  async fn() {
    const bundle = await unpack((await buildBundle("x86_64")).archive);
    const site = await makeFiles(100);
    const out = await tempDir("offline");
    const home = await tempDir("home");
    const paths = site.files.map((file) => file.path);
    const run = await output("unshare", ["-n", "sh", "-c", OFFLINE_RUN, "sh", ...paths], {
      BUNDLE: bundle,
      SITE: site.root,
      OUT: out,
      HOME: home,
      DENO_DIR: join(home, "deno"),
    });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    await assertSameFiles(join(out, "get"), site.files);
    await assertSameFiles(join(out, "curl"), site.files);
  },
});
