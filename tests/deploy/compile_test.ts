/**
 * `deno task compile` where Deno's runtime for compiled programs (denort)
 * cannot be downloaded, as on this project's build host: it stops before
 * building anything, says to build the bundle instead, exits non-zero, and
 * leaves no partial files. dl.deno.land is made unreachable for sure by an
 * HTTPS proxy on a closed port (Deno's fetch and `deno compile` both honour
 * HTTPS_PROXY), so the tests behave the same on a host that could reach it.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT } from "../../scripts/deploy/targets.ts";
import { needs } from "../_permissions.ts";
import { tempDir } from "./_bundle.ts";

const ignore = needs("read", "write", "env", "run");

/** Runs `deno task compile <args>` offline, with only `env` and PATH/HOME set. */
async function compile(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "compile", ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      HTTPS_PROXY: "http://127.0.0.1:1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Every name under `dir` (recursively), or `[]` when `dir` does not exist. */
function listTree(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].flatMap((entry) =>
      entry.isDirectory
        ? [entry.name + "/", ...listTree(join(dir, entry.name)).map((n) => `${entry.name}/${n}`)]
        : [entry.name]
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test(
  "compile without a reachable denort stops before building, names the bundle, exits 1, writes nothing",
  { ignore },
  async () => {
    const out = join(await tempDir("compile"), "dist");
    const result = await compile(["--out", out], { DENO_DIR: await tempDir("deno-dir") });
    assert.equal(result.code, 1, result.stderr);
    const version = Deno.version.deno;
    for (const arch of ["x86_64", "aarch64"]) {
      assert.match(
        result.stderr,
        new RegExp(`${arch}: cannot reach https://dl.deno.land/release/v${version}/denort-${arch}`),
      );
      assert.ok(result.stderr.includes(`deno task bundle --target ${arch}`), result.stderr);
    }
    assert.match(result.stderr, /Nothing was built/);
    assert.doesNotMatch(result.stderr, /Check |Compile /, "stops before type checking");
    assert.deepEqual(listTree(out), [], "no files, not even the output directory");
  },
);

Deno.test("compile refuses DENORT_BIN for two targets at once and a DENORT_BIN that is no file", {
  ignore,
}, async () => {
  const both = await compile([], { DENORT_BIN: Deno.execPath() });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /DENORT_BIN names one target's runtime; pass --target x86_64/);
  const missing = "/nonexistent/denort";
  const absent = await compile(["--target", "aarch64"], { DENORT_BIN: missing });
  assert.equal(absent.code, 1);
  assert.match(absent.stderr, /DENORT_BIN=\/nonexistent\/denort is not a file/);
});

Deno.test(
  "compile takes denort from DENO_DIR when it is there, and a failing deno compile leaves no partial files",
  { ignore },
  async () => {
    const denoDir = await tempDir("deno-dir");
    const cached = join(denoDir, `dl/release/v${Deno.version.deno}`);
    await Deno.mkdir(cached, { recursive: true });
    await Deno.writeTextFile(join(cached, "denort-x86_64-unknown-linux-gnu.zip"), "not a zip");
    const out = await tempDir("compile-out");
    const result = await compile(["--target", "x86_64", "--command", "get", "--out", out], {
      DENO_DIR: denoDir,
    });
    assert.equal(result.code, 1, result.stderr);
    // deno compile got past the download and failed on the archive we planted.
    assert.match(result.stderr, /Failed to unpack archive/);
    assert.match(result.stderr, /deno compile of flowsched-get-x86_64 failed/);
    assert.deepEqual(listTree(out), []);
  },
);

Deno.test(
  "compile honours DENORT_BIN: one binary per command lands in --out, nothing else",
  { ignore },
  async () => {
    const out = await tempDir("compile-out");
    // The full deno binary stands in for denort: deno compile accepts it (the result would
    // ignore its payload, so only the build is checked here).
    const result = await compile(["--target", "x86_64", "--command", "get", "--out", out], {
      DENORT_BIN: Deno.execPath(),
      DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(listTree(out), ["flowsched-get-x86_64"]);
    assert.ok((Deno.statSync(join(out, "flowsched-get-x86_64")).mode! & 0o111) !== 0, "executable");
    assert.match(result.stderr, /flowsched-get-x86_64 \(scripts\/get.ts, permissions "client"\)/);
  },
);
