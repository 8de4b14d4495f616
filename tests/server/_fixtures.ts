/** Test trees of real files with known content hashes, and running curl against them. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { prng } from "../../scripts/bench/common.ts";
import { concat, copyOf } from "../../transport/bytes.ts";

/** A file written into a test tree. */
export interface TreeFile {
  /** URL path, e.g. `/d3/f0042.bin`. */
  path: string;
  size: number;
  sha256: string;
}

/**
 * Writes `count` files of random content into `root`, sizes log-uniform from
 * 0 B to `maxSize` (both ends included), spread over sub-directories.
 */
export async function makeTree(
  root: string,
  count: number,
  maxSize: number,
  seed = 1,
): Promise<TreeFile[]> {
  const random = prng(seed);
  const files: TreeFile[] = [];
  for (let i = 0; i < count; i++) {
    const size = i === 0
      ? 0
      : i === 1
      ? maxSize
      : Math.floor(Math.exp(random() * Math.log(maxSize + 1))) - 1;
    const dir = `d${i % 10}`;
    await Deno.mkdir(`${root}/${dir}`, { recursive: true });
    const data = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
    const path = `/${dir}/f${String(i).padStart(4, "0")}.bin`;
    await Deno.writeFile(root + path, data);
    files.push({ path, size, sha256: sha256(data) });
  }
  return files;
}

/** Hex sha256 of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Runs `command` and returns its stdout and stderr; fails the test if it exits non-zero. */
export async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `${command} failed:\n${text}`);
  return text;
}

/** The HTTP status curl gets for `base + path` (with more curl flags in `extra`). */
export async function curlStatus(base: string, path: string, ...extra: string[]): Promise<string> {
  const args = ["--silent", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}"];
  return (await run("curl", [...args, ...extra, base + path])).trim();
}

/** Reads `conn` until the other end closes it. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  for (let read; (read = await conn.read(buffer)) !== null;) {
    chunks.push(copyOf(buffer.subarray(0, read)));
  }
  return concat(chunks);
}

/** Sends `request` over a fresh connection and returns everything until the other end closes. */
export async function exchange(port: number, request: string | Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof request === "string" ? new TextEncoder().encode(request) : request;
    // Written while reading: a refused head is answered before the server takes all of it.
    const [, received] = await Promise.all([conn.write(bytes).catch(() => 0), readAll(conn)]);
    return received;
  } finally {
    conn.close();
  }
}
