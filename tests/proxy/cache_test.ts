/** The disk cache alone: keys, waiting through Deno.watchFs, claims. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cacheKey, DiskCache, entryFiles, type OpenEntry } from "../../proxy/cache.ts";
import { createLogger } from "../../cli/log.ts";
import { needs } from "../_permissions.ts";
import { waitUntil } from "./_helpers.ts";

// The cache lives in a temporary directory, watched with Deno.watchFs.
const ignore = needs("read", "write");

const log = createLogger("error", "test");

async function withCache(
  body: (cache: DiskCache) => Promise<void>,
  prepare?: (dir: string) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "flowsched-cache-test-" });
  await prepare?.(dir);
  // No polling: only Deno.watchFs can settle a waiter.
  const cache = await DiskCache.open({ dir, maxBytes: 1 << 20, log, pollMs: 1e9 });
  try {
    await body(cache);
  } finally {
    await cache.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}

/** Downloads `size` bytes of `key` into the cache the way the fetcher does. */
async function store(cache: DiskCache, key: string, size: number, fill = 7): Promise<void> {
  const file = await cache.claim(key);
  assert.ok(file instanceof Deno.FsFile);
  assert.ok(cache.reserve(key, size), `room for ${key}`);
  await file.write(new Uint8Array(size).fill(fill));
  await cache.commit(key, file, {
    status: 200,
    headers: [],
    size,
    url: key,
    storedAt: new Date().toISOString(),
  });
}

Deno.test("cacheKey() normalises percent-encodings and refuses what a request line cannot carry", () => {
  assert.equal(cacheKey("/a/b.css"), "/a/b.css");
  assert.equal(cacheKey("/a%20b/c"), "/a%20b/c");
  assert.equal(cacheKey("/%7e/%61%62"), "/~/ab", "unreserved characters are decoded");
  assert.equal(cacheKey("/a%2fb%3F"), "/a%2Fb%3F", "reserved ones stay encoded, hex upper case");
  assert.equal(cacheKey("/"), "/");
  assert.equal(cacheKey("/dir/"), "/dir/");
  assert.equal(cacheKey("/.env"), "/.env");
  assert.equal(cacheKey("/x.tmp"), "/x.tmp");
  for (
    const bad of [
      "relative",
      "/a/../b",
      "/a/%2E%2E/b",
      "/a/./b",
      "/a b",
      "/\u00e9",
      "/\0",
      "/" + "a".repeat(9000),
    ]
  ) {
    assert.equal(cacheKey(bad), null, bad);
  }
});

Deno.test(
  "a waiter learns of rename(x.tmp, x) through watchFs and is not fooled by the remove event",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      const file = await cache.claim("/d/x.bin");
      assert.ok(file instanceof Deno.FsFile);
      assert.equal(await cache.claim("/d/x.bin"), "busy", "the .tmp is owned");
      const waiting = cache.waitFor("/d/x.bin", 5000);
      await file.write(new Uint8Array([1, 2, 3]));
      assert.ok(cache.reserve("/d/x.bin", 3));
      await cache.commit("/d/x.bin", file, {
        status: 200,
        headers: [["content-type", "application/octet-stream"]],
        size: 3,
        url: "/d/x.bin",
        storedAt: new Date().toISOString(),
      });
      assert.equal(await waiting, "done");
      const entry = await cache.open("/d/x.bin");
      assert.deepEqual(entry?.body, new Uint8Array([1, 2, 3]));
    });
  },
);

Deno.test(
  "a waiter learns that a download was abandoned and no partial file remains",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      const file = await cache.claim("/y.bin");
      assert.ok(file instanceof Deno.FsFile);
      const waiting = cache.waitFor("/y.bin", 5000);
      await file.write(new Uint8Array(1000));
      await cache.abandon("/y.bin", file);
      assert.equal(await waiting, "failed");
      assert.equal(await cache.has("/y.bin"), false);
      assert.equal(await cache.open("/y.bin"), null);
      assert.equal(await exists(cache.files("/y.bin").tmp), false);
    });
  },
);

Deno.test("a .tmp is someone's download while its lock is held, and taken over after", {
  ignore,
}, async () => {
  await withCache(async (cache) => {
    const { tmp } = cache.files("/z.bin");
    // Another process's download: it created the .tmp, locked it and wrote to it.
    const owner = await Deno.open(tmp, { write: true, createNew: true });
    await owner.lock(true);
    await owner.write(new Uint8Array(10));
    assert.equal(await cache.claim("/z.bin"), "busy", "a locked .tmp is a live download");
    owner.close(); // the owner dies: the kernel drops its lock
    const file = await cache.claim("/z.bin");
    assert.ok(file instanceof Deno.FsFile, "a dead owner's .tmp is taken over at once");
    await cache.abandon("/z.bin", file);
  });
});

/** Another proxy sharing the cache directory. */
function openOther(dir: string): Promise<DiskCache> {
  return DiskCache.open({ dir, maxBytes: 1 << 20, log, pollMs: 1e9 });
}

function meta3(key: string) {
  return { status: 200, headers: [], size: 3, url: key, storedAt: new Date().toISOString() };
}

Deno.test("a download's .tmp stays locked until it is renamed: nobody takes it in between", {
  ignore,
}, async () => {
  await withCache(async (cache) => {
    const other = await openOther(cache.dir);
    const rename = Deno.rename;
    let seen: Deno.FsFile | string | undefined;
    try {
      const file = await cache.claim("/r.bin");
      assert.ok(file instanceof Deno.FsFile);
      await file.write(new Uint8Array([1, 2, 3]));
      assert.ok(cache.reserve("/r.bin", 3));
      // Just before the body is renamed into place, another proxy (or a waiter
      // of this one) looks at the .tmp: it must still be a live download.
      Deno.rename = async (from, to) => {
        Deno.rename = rename;
        seen = await other.claim("/r.bin");
        return await rename(from, to);
      };
      await cache.commit("/r.bin", file, meta3("/r.bin"));
      assert.equal(seen, "busy", "a .tmp being committed is not a dead process's");
      assert.deepEqual((await other.open("/r.bin"))?.body, new Uint8Array([1, 2, 3]));
    } finally {
      Deno.rename = rename;
      if (seen instanceof Deno.FsFile) seen.close();
      await other.close();
    }
  });
});

Deno.test("a dead-owner verdict about a .tmp renamed since spares the .tmp made after it", {
  ignore,
}, async () => {
  await withCache(async (cache) => {
    const other = await openOther(cache.dir);
    const { tmp, body, meta } = cache.files("/s.bin");
    const open = Deno.open;
    let second: Deno.FsFile | string | undefined;
    let seen: Deno.FsFile | string | undefined;
    try {
      const first = await cache.claim("/s.bin");
      assert.ok(first instanceof Deno.FsFile);
      await first.write(new Uint8Array([1, 2, 3]));
      assert.ok(cache.reserve("/s.bin", 3));
      // The other proxy opens the .tmp to see whether its owner lives. Before
      // it tries the lock, the owner renames it and lets go of it, the entry
      // is evicted, and a new download of it creates a new .tmp.
      Deno.open = async (path, options) => {
        const opened = await open(path, options);
        if (path === tmp && !options?.write) {
          Deno.open = open;
          await cache.commit("/s.bin", first, meta3("/s.bin"));
          await Deno.remove(body);
          await Deno.remove(meta);
          second = await cache.claim("/s.bin");
        }
        return opened;
      };
      seen = await other.claim("/s.bin");
      assert.ok(second instanceof Deno.FsFile);
      assert.equal(seen, "busy", "the new .tmp is a live download");
      assert.ok(await exists(tmp), "and it is still there");
      await second.write(new Uint8Array([4, 5, 6]));
      await cache.commit("/s.bin", second, meta3("/s.bin"));
      assert.deepEqual((await other.open("/s.bin"))?.body, new Uint8Array([4, 5, 6]));
    } finally {
      Deno.open = open;
      if (seen instanceof Deno.FsFile) seen.close();
      await other.close();
    }
  });
});

Deno.test("a claim that stalls too long before locking gives way to the .tmp made since", {
  ignore,
}, async () => {
  await withCache(async (cache) => {
    const other = await openOther(cache.dir);
    const { tmp } = cache.files("/g.bin");
    const lock = Deno.FsFile.prototype.lock;
    let seen: Deno.FsFile | string | undefined;
    let mine: Deno.FsFile | string | undefined;
    try {
      // This claim created the .tmp and stalls before locking it, so long that
      // the other proxy takes it for a dead claim and starts its own download.
      Deno.FsFile.prototype.lock = async function (this: Deno.FsFile, exclusive?: boolean) {
        Deno.FsFile.prototype.lock = lock;
        const old = new Date(Date.now() - 5000);
        await Deno.utime(tmp, old, old);
        seen = await other.claim("/g.bin");
        return await lock.call(this, exclusive);
      };
      mine = await cache.claim("/g.bin");
      assert.ok(seen instanceof Deno.FsFile, "the stalled claim's .tmp was taken over");
      assert.equal(mine, "busy", "the stalled claim owns nothing: the .tmp is the other's");
      await seen.write(new Uint8Array([7, 8, 9]));
      await other.commit("/g.bin", seen, meta3("/g.bin"));
      assert.deepEqual((await cache.open("/g.bin"))?.body, new Uint8Array([7, 8, 9]));
    } finally {
      Deno.FsFile.prototype.lock = lock;
      if (mine instanceof Deno.FsFile) mine.close();
      await other.close();
    }
  });
});

Deno.test("an empty unlocked .tmp may be a claim about to lock it, until it is a second old", {
  ignore,
}, async () => {
  await withCache(async (cache) => {
    const { tmp } = cache.files("/e.bin");
    await Deno.writeFile(tmp, new Uint8Array(0));
    assert.equal(await cache.claim("/e.bin"), "busy");
    const old = new Date(Date.now() - 5000);
    await Deno.utime(tmp, old, old);
    const file = await cache.claim("/e.bin");
    assert.ok(file instanceof Deno.FsFile);
    await cache.abandon("/e.bin", file);
  });
});

Deno.test(
  "reserve() evicts entries nobody reads, and refuses room that entries being read hold",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      const size = 600 * 1024; // above the size read into memory at once: opening pins it
      await store(cache, "/a.bin", size);
      const a = await cache.open("/a.bin");
      assert.ok(a?.mapped);
      const b = await cache.claim("/b.bin");
      assert.ok(b instanceof Deno.FsFile);
      assert.equal(cache.reserve("/b.bin", size), false, "a is being read: no room");
      assert.ok(await exists(cache.files("/a.bin").body), "nothing was evicted for nothing");
      assert.equal(cache.reserve("/b.bin", (1 << 20) + 1), false, "larger than the whole cache");
      assert.equal(a.body.byteLength, size);
      assert.equal(cache.reserve("/b.bin", size), false, "still pinned until released");
      a.release();
      await waitUntil(() => cache.reserve("/b.bin", size), 5000, "room once a is read");
      assert.equal(await exists(cache.files("/a.bin").body), false, "a was evicted");
      assert.equal(await exists(cache.files("/a.bin").meta), false);
      await cache.abandon("/b.bin", b);
      assert.equal(cache.bytes, 0);
    });
  },
);

Deno.test(
  "an entry whose metadata names another URL is never served, and is removed",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      await store(cache, "/m.bin", 3);
      const { meta, body } = cache.files("/m.bin");
      const stored = JSON.parse(await Deno.readTextFile(meta));
      await Deno.writeTextFile(meta, JSON.stringify({ ...stored, url: "/other.bin" }));
      assert.equal(await cache.open("/m.bin"), null);
      assert.equal(await exists(body), false);
      assert.equal(await cache.has("/m.bin"), false);
      assert.equal(cache.entries, 0);
    });
  },
);

Deno.test(
  "opening a cache indexes complete entries and removes what a dead process left",
  { ignore },
  async () => {
    const kept = entryFiles("/kept.bin");
    const stale = entryFiles("/stale.bin");
    const lone = entryFiles("/lone.bin");
    await withCache(async (cache) => {
      assert.ok(cache.knows("/kept.bin"));
      assert.equal(cache.entries, 1);
      assert.equal(cache.bytes, 5);
      assert.equal(await exists(join(cache.dir, stale.tmp)), false, "stale .tmp removed");
      assert.equal(await exists(join(cache.dir, lone.meta)), false, "metadata alone removed");
      const dirs = [];
      for await (const entry of Deno.readDir(cache.dir)) if (entry.isDirectory) dirs.push(entry);
      assert.equal(dirs.length, 256);
      assert.deepEqual((await cache.open("/kept.bin"))?.body, new Uint8Array(5).fill(1));
    }, async (dir) => {
      for (const files of [kept, stale, lone]) {
        await Deno.mkdir(join(dir, files.body, ".."), { recursive: true });
      }
      await Deno.writeFile(join(dir, kept.body), new Uint8Array(5).fill(1));
      await Deno.writeTextFile(
        join(dir, kept.meta),
        JSON.stringify({ status: 200, headers: [], size: 5, url: "/kept.bin", storedAt: "" }),
      );
      await Deno.writeFile(join(dir, stale.tmp), new Uint8Array(5));
      const hourAgo = new Date(Date.now() - 3600_000);
      await Deno.utime(join(dir, stale.tmp), hourAgo, hourAgo);
      await Deno.writeTextFile(join(dir, lone.meta), "{}");
    });
  },
);

Deno.test(
  "hits on a large body share one mapping, kept while idle and unmapped once the entry's files change",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      await store(cache, "/big.bin", 400 * 1024, 3);
      // The watcher may still deliver the store's own events, and any event on an entry's files
      // stops sharing its mapping: two hits share one once a third, after a pause, still does.
      const address = (entry: OpenEntry) =>
        Deno.UnsafePointer.value(Deno.UnsafePointer.of(entry.body));
      let first: OpenEntry | null = null;
      let second: OpenEntry | null = null;
      for (let tries = 0; tries < 100; tries++) {
        first = await cache.open("/big.bin");
        second = await cache.open("/big.bin");
        assert.ok(first?.mapped && second?.mapped);
        await new Promise((resolve) => setTimeout(resolve, 50));
        const third = await cache.open("/big.bin");
        assert.ok(third?.mapped);
        const shared = address(first) === address(second) && address(second) === address(third);
        third.release();
        if (shared) break;
        first.release();
        second.release();
      }
      assert.ok(first && second);
      assert.equal(address(first), address(second), "one mapping for both hits");
      assert.deepEqual(cache.mapped, { mappings: 1, references: 2 });
      first.release();
      second.release();
      assert.deepEqual(cache.mapped, { mappings: 1, references: 0 }, "kept for the next hit");
      // Known and mapped: a hit takes the mapping again without a file call.
      const known = cache.kept("/big.bin");
      assert.ok(known?.mapped);
      assert.equal(address(known), address(first));
      assert.deepEqual(cache.mapped, { mappings: 1, references: 1 });
      known.release();
      const third = await cache.open("/big.bin");
      assert.deepEqual(third?.body, new Uint8Array(400 * 1024).fill(3));
      // Another process removes the body while a hit still sends it: unmapped once that is done.
      await Deno.remove(cache.files("/big.bin").body);
      // Until the watcher's event, a hit may still be answered from the mapping, whole.
      const miss = () =>
        cache.open("/big.bin").then((entry) => {
          entry?.release();
          return entry === null;
        });
      await waitUntil(miss, 5000, "a miss");
      assert.equal(cache.kept("/big.bin"), undefined, "forgotten at the event");
      assert.deepEqual(third?.body, new Uint8Array(400 * 1024).fill(3), "still whole");
      assert.deepEqual(cache.mapped, { mappings: 1, references: 1 });
      third!.release();
      third!.release(); // a second call changes nothing
      // Unmapped at the release if the watcher's event came first, else at the event.
      await waitUntil(() => cache.mapped.mappings === 0, 5000, "the mapping unmapped");
      assert.equal(cache.mapped.references, 0);
      // An idle mapping goes as soon as its entry's files change.
      await store(cache, "/big.bin", 400 * 1024, 4);
      (await cache.open("/big.bin"))!.release();
      assert.deepEqual(cache.mapped, { mappings: 1, references: 0 });
      await Deno.remove(cache.files("/big.bin").meta);
      await waitUntil(() => cache.mapped.mappings === 0, 5000, "the idle mapping unmapped");
    });
  },
);

Deno.test(
  "with synchronous file calls (as on a tmpfs) entries store and serve the same bytes, and a bad one is removed",
  { ignore },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "flowsched-cache-test-" });
    const cache = await DiskCache.open({
      dir,
      maxBytes: 1 << 20,
      log,
      pollMs: 1e9,
      syncIo: true,
    });
    try {
      await store(cache, "/small.bin", 1000);
      await store(cache, "/large.bin", 300 * 1024);
      const small = await cache.open("/small.bin");
      assert.deepEqual(small?.body, new Uint8Array(1000).fill(7));
      const large = await cache.open("/large.bin");
      assert.ok(large?.mapped, "a large body is the file's mapping");
      assert.deepEqual(large.body, new Uint8Array(300 * 1024).fill(7));
      // Replaced while open: the mapping still holds the body it opened, whole.
      await Deno.remove(cache.files("/large.bin").body);
      await store(cache, "/large.bin", 300 * 1024 + 1);
      assert.deepEqual(large.body, new Uint8Array(300 * 1024).fill(7));
      large.release();
      assert.equal((await cache.open("/large.bin"))?.size, 300 * 1024 + 1);
      // Metadata that does not match its body: a miss once the watcher has dropped the
      // memory copy, and the entry is gone.
      await Deno.writeTextFile(cache.files("/small.bin").meta, JSON.stringify({ url: "/other" }));
      await waitUntil(async () => (await cache.open("/small.bin")) === null, 5000, "a miss");
      assert.equal(await exists(cache.files("/small.bin").body), false);
      assert.equal(await cache.open("/missing.bin"), null);
      // An abandoned download leaves nothing behind.
      const file = await cache.claim("/gone.bin");
      assert.ok(file instanceof Deno.FsFile);
      assert.equal(await cache.claim("/gone.bin"), "busy");
      await cache.abandon("/gone.bin", file);
      assert.equal(await exists(cache.files("/gone.bin").tmp), false);
      assert.equal(await cache.has("/gone.bin"), false);
    } finally {
      await cache.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * Opens `key` until its copy is kept in memory: a copy read while the
 * watcher reports changes (the entry's own commit, just before) is not kept.
 */
async function openKept(cache: DiskCache, key: string) {
  let entry = await cache.open(key);
  await waitUntil(
    async () => {
      entry = await cache.open(key);
      return cache.memory.entries > 0 && (await cache.open(key)) === entry;
    },
    5000,
    `a copy of ${key} kept`,
  );
  return entry;
}

Deno.test(
  "small bodies are kept in memory within their budget, and a copy goes when another process replaces or evicts its entry",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      const other = await openOther(cache.dir);
      try {
        await store(cache, "/k.bin", 3);
        const first = await openKept(cache, "/k.bin");
        assert.deepEqual(first?.body, new Uint8Array(3).fill(7));
        assert.deepEqual(cache.memory, { bytes: 3, entries: 1 });
        assert.equal(await cache.open("/k.bin"), first, "a repeated hit is the copy in memory");

        // Another proxy evicts the entry and stores a new body under the same key.
        const { body, meta } = cache.files("/k.bin");
        await Deno.remove(body);
        await Deno.remove(meta);
        await store(other, "/k.bin", 4, 9);
        await waitUntil(() => cache.memory.entries === 0, 5000, "the copy is dropped");
        assert.deepEqual((await cache.open("/k.bin"))?.body, new Uint8Array(4).fill(9));

        // Evicted by another proxy and not stored again: a miss, not the old copy.
        await Deno.remove(body);
        await Deno.remove(meta);
        await waitUntil(() => cache.memory.entries === 0, 5000, "the copy is dropped");
        assert.equal(await cache.open("/k.bin"), null);
      } finally {
        await other.close();
      }
    });
  },
);

Deno.test("the memory budget keeps the most recently used small bodies; 0 keeps none", {
  ignore,
}, async () => {
  for (const [memoryBytes, kept] of [[5, 1], [0, 0]] as const) {
    const dir = await Deno.makeTempDir({ prefix: "flowsched-cache-test-" });
    const cache = await DiskCache.open({ dir, maxBytes: 1 << 20, memoryBytes, log, pollMs: 1e9 });
    try {
      await store(cache, "/a.bin", 3, 1);
      await store(cache, "/b.bin", 3, 2);
      if (kept) await openKept(cache, "/a.bin");
      assert.deepEqual((await cache.open("/a.bin"))?.body, new Uint8Array(3).fill(1));
      if (kept) await openKept(cache, "/b.bin");
      assert.deepEqual((await cache.open("/b.bin"))?.body, new Uint8Array(3).fill(2));
      assert.deepEqual(cache.memory, { bytes: 3 * kept, entries: kept }, `budget ${memoryBytes}`);
      // The evicted copy is read from the file again, whole and right.
      assert.deepEqual((await cache.open("/a.bin"))?.body, new Uint8Array(3).fill(1));
    } finally {
      await cache.close();
      await Deno.remove(dir, { recursive: true });
    }
  }
});
