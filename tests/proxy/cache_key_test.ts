/**
 * Properties of the cache's naming: a URL path chooses an entry and nothing
 * else. No two paths share an entry unless they spell the same path, and no
 * path lands on another entry's body, metadata or `.tmp`.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { cacheKey, entryFiles } from "../../proxy/cache.ts";

const NAME = /^([0-9a-f]{2})\/\1[0-9a-f]{62}\.(body|meta|tmp)$/;

/** Segments that broke the old layout, names of the new one, and anything else. */
const segment = fc.oneof(
  fc.constantFrom(
    "",
    ".tmp",
    ".meta",
    ".body",
    ".headers.json",
    "x.tmp",
    "x.headers.json",
    ".index",
    "%2F",
    "%2f",
    "%2e",
    "%7E",
    "~",
    "00",
    "ab",
    "..",
    ".",
  ),
  fc.stringMatching(/^[0-9a-f]{64}\.(tmp|meta|body)$/),
  fc.string({ maxLength: 12 }),
  fc.stringMatching(/^(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*$/),
);

const urlPath = fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) =>
  "/" + parts.join("/")
);

/** The path with every percent-encoding decoded to its byte: what a server finally sees. */
function bytesOf(path: string): string {
  return path.replace(/%([0-9a-fA-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

function allFiles(key: string): string[] {
  const files = entryFiles(key);
  return [files.body, files.meta, files.tmp];
}

Deno.test("every entry file is a hash plus a fixed suffix inside one of the 256 directories", () => {
  fc.assert(
    fc.property(urlPath, (path) => {
      const key = cacheKey(path);
      if (key === null) return;
      const files = allFiles(key);
      for (const file of files) assert.match(file, NAME);
      assert.equal(new Set(files).size, 3);
      assert.equal(
        new Set(files.map((file) => file.replace(/\.[a-z]+$/, ""))).size,
        1,
        "one entry, one hash",
      );
    }),
    { numRuns: 2000 },
  );
});

Deno.test("two different cache keys never share a file, whatever the paths", () => {
  const pair = fc.oneof(
    fc.tuple(urlPath, urlPath),
    // The shapes that collided before: a path and its .tmp, its metadata, a child, a slash.
    urlPath.chain((a) =>
      fc.tuple(
        fc.constant(a),
        fc.constantFrom(
          a + ".tmp",
          a + ".headers.json",
          a + ".meta",
          a + "/",
          a + "/x",
          a + ".tmp/sub/x",
        ),
      )
    ),
    // A path that spells another entry's file names.
    urlPath.chain((a) => {
      const key = cacheKey(a);
      return fc.tuple(
        fc.constant(a),
        fc.constantFrom(...(key ? allFiles(key).map((file) => "/" + file) : [a])),
      );
    }),
  );
  fc.assert(
    fc.property(pair, ([a, b]) => {
      const keyA = cacheKey(a);
      const keyB = cacheKey(b);
      if (keyA === null || keyB === null || keyA === keyB) return;
      const files = new Set(allFiles(keyA));
      for (const file of allFiles(keyB)) assert.ok(!files.has(file), `${a} and ${b} share ${file}`);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("spellings of one path share one entry; paths of different bytes never do", () => {
  // Re-spells unreserved characters as %XX and flips the case of hex digits.
  const respelled = (path: string) =>
    fc.array(fc.boolean(), { minLength: path.length, maxLength: path.length }).map((flips) =>
      path.replace(/%[0-9a-fA-F]{2}|[A-Za-z0-9._~-]/g, (match, at: number) => {
        if (!flips[at]) return match;
        if (match.startsWith("%")) {
          return match === match.toLowerCase() ? match.toUpperCase() : match.toLowerCase();
        }
        return "%" + match.charCodeAt(0).toString(16).padStart(2, "0");
      })
    );
  fc.assert(
    fc.property(urlPath.chain((a) => fc.tuple(fc.constant(a), respelled(a))), ([a, b]) => {
      const key = cacheKey(a);
      if (key !== null) assert.equal(cacheKey(b), key, `${a} and ${b}`);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(urlPath, urlPath, (a, b) => {
      const keyA = cacheKey(a);
      if (keyA !== null && keyA === cacheKey(b)) assert.equal(bytesOf(a), bytesOf(b));
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(urlPath, (path) => {
      const key = cacheKey(path);
      if (key !== null) assert.equal(cacheKey(key), key, "normalising twice changes nothing");
    }),
  );
});

Deno.test("every path a URL parser gives is stored, up to the length limit", () => {
  fc.assert(
    fc.property(fc.webPath(), (path) => {
      const pathname = new URL("http://flowsched.invalid" + path).pathname;
      if (pathname.length <= 8192) assert.notEqual(cacheKey(pathname), null, pathname);
    }),
    { numRuns: 3000 },
  );
});
