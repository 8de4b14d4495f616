/**
 * The Raspberry Pi build, run on this x86_64 host under qemu-user: the
 * aarch64 bundle from `deno task bundle --target aarch64`, unpacked into an
 * empty directory, runs its launchers with the bundle's aarch64 Deno under
 * `qemu-aarch64` and the arm64 libsctp/libusrsctp from the bundle's own
 * .debs. Its server, over usrsctp and over tcpmux, serves 100 files that the
 * x86_64 client of this repository fetches sha256-identical, and its proxy
 * serves them to curl.
 *
 * Kernel SCTP is not exercised here: qemu-user runs the program on the host's
 * kernel, and this host's kernel has no SCTP. The lab (User-Mode Linux)
 * tests the kernel transport on x86_64; docs/DEPLOY.md says so too.
 *
 * qemu costs about 50× in CPU per instruction, so each aarch64 process takes
 * tens of seconds to start: the three of them start at once.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { get } from "../../scripts/get.ts";
import { curl, freeUdpPort } from "../proxy/_helpers.ts";
import { needs } from "../_permissions.ts";
import {
  assertSameFiles,
  buildBundle,
  Launched,
  makeFiles,
  type SiteFile,
  tempDir,
  unpack,
} from "./_bundle.ts";
import { emulationMissing, qemuCommand, skipWithReason } from "./_qemu.ts";

const ignore = needs("read", "write", "net", "ffi", "env", "sys", "run") ||
  skipWithReason("aarch64 emulation tests", emulationMissing());

/** How long an aarch64 process under qemu may take to start on a busy 2-core host. */
const START_MS = 240_000;

Deno.test({
  name:
    "the aarch64 bundle's kernel SCTP transport is not run here: this host's kernel has no SCTP",
  ignore: true,
  fn() {},
});

Deno.test({
  name: "the aarch64 bundle, unpacked into an empty directory, runs under qemu-aarch64: " +
    "its server serves 100 files over usrsctp and tcpmux to the x86_64 client, its proxy to curl",
  ignore,
  async fn(t) {
    const bundle = await unpack((await buildBundle("aarch64")).archive);
    const libs = await tempDir("arm64-libs");
    for (const entry of Deno.readDirSync(join(bundle, "debs"))) {
      const x = await new Deno.Command("dpkg-deb", {
        args: ["-x", join(bundle, "debs", entry.name), libs],
      }).output();
      assert.equal(x.code, 0, `dpkg-deb -x ${entry.name}`);
    }
    const env = {
      FLOWSCHED_RUNNER: qemuCommand(join(libs, "usr/lib/aarch64-linux-gnu")).join(" "),
      DENO_DIR: await tempDir("deno-dir"),
    };
    const site = await makeFiles(100);
    const udpPort = await freeUdpPort();
    const server = (transport: string) =>
      new Launched(join(bundle, "bin/flowsched-server"), [
        ...["--transport", transport, "--port", "0", "--udp-port", String(udpPort)],
        ...["--root", site.root, "--streams", "4", "--log-level", "info"],
      ], env);
    const processes = [server("usrsctp"), server("tcpmux")];
    const [usrsctp, tcpmux] = processes;
    let statuses: Deno.CommandStatus[] = [];
    try {
      const portOf = async (process: Launched) =>
        JSON.parse(await process.waitForLine(`"listening"`, START_MS)).port as number;
      const usrsctpPort = await portOf(usrsctp);
      const proxy = new Launched(join(bundle, "bin/flowsched-proxy"), [
        ...["--listen", "127.0.0.1:0", "--upstream", `usrsctp://127.0.0.1:${usrsctpPort}`],
        ...["--udp-port", String(udpPort), "--cache", await tempDir("cache"), "--streams", "4"],
        // Emulation is tens of times slower than a Pi: wait longer than the defaults do.
        ...["--connect-timeout", "60000", "--probe-timeout", "60000"],
        ...["--request-timeout", "120000"],
      ], env);
      processes.push(proxy);

      await t.step("its server over usrsctp serves the files sha256-identical", async () => {
        await fetchAll(`usrsctp://127.0.0.1:${usrsctpPort}`, site.files, udpPort);
      });
      await t.step("its server over tcpmux serves the files sha256-identical", async () => {
        await fetchAll(`tcpmux://127.0.0.1:${await portOf(tcpmux)}`, site.files, udpPort);
      });
      await t.step("its proxy serves the files to curl sha256-identical", async () => {
        const line = await proxy.waitForLine(`"listening"`, START_MS);
        await proxy.waitForLine("upstream association up", START_MS);
        const listen = JSON.parse(line).listen as string;
        const out = await tempDir("curl");
        const args = ["-sS", "--fail", "--parallel", "--parallel-max", "8", "--create-dirs"];
        for (const file of site.files) {
          args.push("-o", join(out, file.path), `http://${listen}${file.path}`);
        }
        const result = await curl(args);
        assert.equal(result.code, 0, `curl: ${result.stderr}`);
        await assertSameFiles(out, site.files);
      });
    } finally {
      statuses = await Promise.all(processes.map((process) => process.stop()));
    }
    assert.deepEqual(statuses.map((s) => s.code), [0, 0, 0], "each exits with 0 on SIGTERM");
  },
});

Deno.test(
  "the aarch64 bundle's launchers refuse to start on x86_64 without FLOWSCHED_RUNNER and say how",
  { ignore: ignore || Deno.build.arch !== "x86_64" },
  async () => {
    const bundle = await unpack((await buildBundle("aarch64")).archive);
    for (const command of ["server", "proxy", "get"]) {
      const result = await new Deno.Command(join(bundle, `bin/flowsched-${command}`), {
        args: ["--help"],
        env: { FLOWSCHED_RUNNER: "" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(result.code, 1);
      const stderr = new TextDecoder().decode(result.stderr);
      assert.match(stderr, new RegExp(`flowsched-${command}: this bundle is for aarch64, but `));
      assert.match(stderr, /FLOWSCHED_RUNNER="qemu-aarch64 -L \/usr\/aarch64-linux-gnu"/);
    }
  },
);

/** Fetches every file with the x86_64 client (`deno task get`'s code) and compares hashes. */
async function fetchAll(url: string, files: SiteFile[], udpPort: number): Promise<void> {
  const out = await tempDir("get");
  const [first, ...rest] = files.map((file) => file.path);
  const failed = await get(`${url}${first}`, rest, {
    output: `${out}/`,
    head: false,
    include: false,
    streams: 4,
    udpPort,
  });
  assert.equal(failed, 0, "every response is 2xx");
  await assertSameFiles(out, files);
}
