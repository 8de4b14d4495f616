/**
 * Helpers of the deploy tests: build a bundle with `deno task bundle` (once
 * per target and test file), unpack it into an empty directory, write a site
 * of files, and run a bundle's launcher as a process whose JSON log lines
 * are collected.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { REPO_ROOT, type TargetName } from "../../scripts/deploy/targets.ts";

/** Hex sha256 of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

const temporary: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of temporary) Deno.removeSync(dir, { recursive: true });
});

/** A temporary directory removed when the test file ends. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `flowsched-deploy-${prefix}-` });
  temporary.push(dir);
  return dir;
}

/** The version in deno.json, which names the archives. */
export const VERSION: string =
  JSON.parse(Deno.readTextFileSync(join(REPO_ROOT, "deno.json"))).version;

const built = new Map<TargetName, Promise<{ archive: string; stderr: string }>>();

/** Runs `deno task bundle --target <target>` into a temp dir (once per target); the archive. */
export function buildBundle(target: TargetName): Promise<{ archive: string; stderr: string }> {
  let promise = built.get(target);
  if (!promise) {
    promise = (async () => {
      const out = await tempDir("dist");
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["task", "bundle", "--target", target, "--out", out],
        cwd: REPO_ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(stderr);
      assert.equal(code, 0, `deno task bundle --target ${target} failed:\n${text}`);
      const files = [...Deno.readDirSync(out)].map((entry) => entry.name);
      assert.deepEqual(
        files,
        [`flowsched-${VERSION}-${target}.tar.gz`],
        "one archive, nothing else",
      );
      return { archive: join(out, files[0]), stderr: text };
    })();
    built.set(target, promise);
  }
  return promise;
}

/** Unpacks `archive` into a new empty directory; returns the bundle's top directory. */
export async function unpack(archive: string): Promise<string> {
  const dir = await tempDir("unpacked");
  const tar = await new Deno.Command("tar", { args: ["xzf", archive, "-C", dir] }).output();
  assert.equal(tar.code, 0, "tar xzf");
  const top = [...Deno.readDirSync(dir)];
  assert.equal(top.length, 1, "the archive holds one top directory");
  return join(dir, top[0].name);
}

/** A file of a generated site. */
export interface SiteFile {
  path: string;
  sha256: string;
}

/**
 * Writes `count` files of random bytes into a new directory, in nested
 * directories, from empty to a few hundred KiB, the last one 1 MiB (several
 * runs and chunks).
 */
export async function makeFiles(count: number): Promise<{ root: string; files: SiteFile[] }> {
  const root = await tempDir("site");
  const files: SiteFile[] = [];
  for (let i = 0; i < count; i++) {
    const size = i === count - 1 ? 1 << 20 : 10 * i * i + (i % 7);
    const data = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) {
      crypto.getRandomValues(data.subarray(at, Math.min(size, at + 65536)));
    }
    const path = `/d${i % 4}/${i % 3 === 0 ? "sub/" : ""}file-${i}.bin`;
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeFile(join(root, path), data);
    files.push({ path, sha256: sha256(data) });
  }
  return { root, files };
}

/** Asserts that every file under `dir` named by a site path has the site's sha256. */
export async function assertSameFiles(dir: string, files: SiteFile[]): Promise<void> {
  for (const file of files) {
    const got = sha256(await Deno.readFile(join(dir, file.path)));
    assert.equal(got, file.sha256, `sha256 of ${file.path}`);
  }
}

/** A running launcher of an unpacked bundle; its stderr lines are collected. */
export class Launched {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #drained: Promise<void>;
  #waiters: { text: string; resolve: (line: string) => void }[] = [];

  constructor(program: string, args: string[], env: Record<string, string>) {
    this.process = new Deno.Command(program, {
      args,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#drained = this.#drain();
  }

  async #drain() {
    let rest = "";
    for await (const chunk of this.process.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((waiter) => {
          if (!line.includes(waiter.text)) return true;
          waiter.resolve(line);
          return false;
        });
      }
    }
  }

  /** The first log line that contains `text`; fails if the process exits or `timeoutMs` passes. */
  waitForLine(text: string, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((line) => line.includes(text));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`no "${text}" within ${timeoutMs} ms`), timeoutMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new Error(`${why}; log:\n${this.lines.join("\n")}`));
      };
      this.process.status.then((status) => fail(`exited with ${status.code} before "${text}"`));
      this.#waiters.push({
        text,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** Stops the process (SIGTERM, as systemd does; SIGKILL after `graceMs`) and waits for it. */
  async stop(graceMs = 30_000): Promise<Deno.CommandStatus> {
    const signal = (name: Deno.Signal) => {
      try {
        this.process.kill(name);
      } catch { /* already gone */ }
    };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), graceMs);
    const status = await this.process.status;
    clearTimeout(timer);
    await this.#drained;
    return status;
  }
}
