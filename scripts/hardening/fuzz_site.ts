/**
 * The small site the live fuzzer serves, and what a correct server answers
 * for its well-formed requests: the files, and the targets whose status and
 * body are known exactly.
 *
 * @module
 */

import { dirname, join } from "node:path";

/** A file of the site: URL path (decoded) → contents. */
export type SiteFiles = ReadonlyMap<string, Uint8Array>;

/** What a correct server answers to a GET of a target. */
export interface Expected {
  readonly status: 200 | 404;
  /** The body of a 200. */
  readonly body?: Uint8Array;
}

const encoder = new TextEncoder();

/** Deterministic bytes, so a failing body can be told apart from its neighbours. */
function pattern(size: number, salt: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = salt * 2654435761 >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** The site's files: a page with embedded resources (the proxy prefetches them), several runs' worth of body, a directory with an index, names that need percent-encoding. */
export function siteFiles(): SiteFiles {
  return new Map([
    [
      "/index.html",
      encoder.encode(
        '<!doctype html><html><head><link rel="stylesheet" href="/a.css">' +
          '<script src="/app.js"></script></head><body><img src="/img/logo.png">' +
          '<a href="/dir/">dir</a></body></html>\n',
      ),
    ],
    ["/a.css", encoder.encode("body { color: #333; }\n".repeat(100))],
    ["/app.js", encoder.encode("console.log('flowsched');\n".repeat(400))],
    ["/img/logo.png", pattern(3000, 1)],
    // Larger than one run (128 KiB by default): its body comes in CONTINUE runs.
    ["/mid.bin", pattern(300_000, 2)],
    ["/dir/index.html", encoder.encode("<!doctype html><p>a directory index</p>\n")],
    ["/dir/b.txt", encoder.encode("b\n".repeat(50))],
    ["/sp ace.txt", encoder.encode("a name with a space\n")],
    ["/é.txt", encoder.encode("a name beyond ASCII\n")],
  ]);
}

/** Writes `files` below `root`. */
export async function writeSite(root: string, files: SiteFiles): Promise<void> {
  for (const [path, bytes] of files) {
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeFile(join(root, path), bytes);
  }
}

/**
 * Request targets whose answer is known exactly, for a server and a proxy
 * alike: the files (some with a query string, which the proxy passes through
 * uncached), the directory index, and missing files.
 */
export function knownTargets(files: SiteFiles): ReadonlyMap<string, Expected> {
  const ok = (path: string): Expected => ({ status: 200, body: files.get(path)! });
  const targets = new Map<string, Expected>();
  for (const path of files.keys()) {
    targets.set(path.split("/").map(encodeURIComponent).join("/"), ok(path));
  }
  targets.set("/", ok("/index.html"));
  targets.set("/dir/", ok("/dir/index.html"));
  targets.set("/dir", ok("/dir/index.html"));
  targets.set("/a.css?v=1", ok("/a.css"));
  targets.set("/mid.bin?x=%20y", ok("/mid.bin"));
  targets.set("/./img/logo.png", ok("/img/logo.png"));
  targets.set("/missing.html", { status: 404 });
  targets.set("/img/missing.png", { status: 404 });
  targets.set("/dir/missing/deeper.txt", { status: 404 });
  return targets;
}
