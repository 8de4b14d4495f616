/**
 * The proxy's disk cache, shareable by several proxy processes on one host.
 *
 * Layout, for a URL path `/a/b.css` in cache directory `C`:
 *
 * - `C/a/b.css.tmp` — the body while it downloads. Created with O_EXCL: whoever
 *   creates it owns the download; everyone else waits.
 * - `C/a/b.css.headers.json` — `{status, headers, size, url, storedAt}`,
 *   written before the body is renamed into place.
 * - `C/a/b.css` — the complete body, renamed from `.tmp` when every byte has
 *   arrived. Its existence is what "cached" means; a partial or failed
 *   download never gets this name (its `.tmp` is removed).
 *
 * A URL path ending in `/` is stored as `<dir>/.index`. Paths that cannot be
 * stored safely bypass the cache: segments starting with `.`, names ending in
 * `.tmp` or `.headers.json`, undecodable or overlong ones. `..` can never
 * occur (URL parsing removes dot segments, and decoded segments are checked
 * again), so nothing is ever written outside the cache directory.
 *
 * Waiters learn that an entry completed through `Deno.watchFs` events: on
 * `rename(x.tmp, x)` it reports `remove [x.tmp]`, `rename [x]`, then
 * `rename [x.tmp, x]`. Completion is keyed on the final name `x`; a `remove`
 * of `x.tmp` only means failure if `x` does not exist afterwards. A slow poll
 * backs the watcher up (recursive watches can miss files in brand-new
 * directories).
 *
 * Eviction is least-recently-used by body bytes, per process (each process
 * knows the entries it stored, read, or found at start); entries being read
 * or written are never evicted.
 *
 * @module
 */

import { dirname, join } from "node:path";
import type { Logger } from "../cli/log.ts";

const TMP = ".tmp";
const HEADERS = ".headers.json";
const MAX_SEGMENT = 200;
const MAX_PATH = 1024;
/** Bodies up to this size are read into memory at once when served. */
const SMALL_BODY = 256 * 1024;
const POLL_MS = 250;

/** What is kept beside a body. */
export interface EntryMeta {
  status: number;
  headers: [string, string][];
  size: number;
  url: string;
  storedAt: string;
}

/** An entry opened for serving: read its body exactly once. */
export interface OpenEntry {
  readonly meta: EntryMeta;
  readonly size: number;
  /** The body; the entry stays pinned (not evictable) until it is read or cancelled. */
  readonly body: ReadableStream<Uint8Array> | Uint8Array;
}

/**
 * The relative cache path of a URL pathname (as `URL.pathname` gives it,
 * percent-encoded), or `null` if it cannot be cached safely.
 */
export function cacheKey(pathname: string): string | null {
  if (!pathname.startsWith("/") || pathname.length > MAX_PATH) return null;
  const raw = pathname.slice(1).split("/");
  const directory = raw[raw.length - 1] === "";
  if (directory) raw.pop();
  const segments: string[] = [];
  for (const part of raw) {
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return null;
    }
    if (
      segment === "" || segment.startsWith(".") || segment.length > MAX_SEGMENT ||
      /[\/\\\0]/.test(segment)
    ) return null;
    segments.push(segment);
  }
  if (directory) segments.push(".index");
  const last = segments[segments.length - 1];
  if (last.endsWith(TMP) || last.endsWith(HEADERS)) return null;
  return segments.join("/");
}

/** Whether `path` lies on a tmpfs, from /proc/mounts (undefined if unknown). */
export async function isTmpfs(path: string): Promise<boolean | undefined> {
  try {
    const mounts = (await Deno.readTextFile("/proc/mounts")).split("\n")
      .map((line) => line.split(" "))
      .filter((fields) => fields.length > 2)
      .map(([, point, type]) => ({ point: point.replace(/\\040/g, " "), type }));
    let best: { point: string; type: string } | undefined;
    for (const mount of mounts) {
      const inside = path === mount.point ||
        path.startsWith(mount.point.endsWith("/") ? mount.point : mount.point + "/");
      if (inside && (!best || mount.point.length >= best.point.length)) best = mount;
    }
    return best ? best.type === "tmpfs" : undefined;
  } catch {
    return undefined;
  }
}

/** Options of a cache. */
export interface DiskCacheOptions {
  /** The cache directory (created if missing). */
  dir: string;
  /** Body bytes kept before least recently used entries are evicted. */
  maxBytes: number;
  log: Logger;
  /** Called once per eviction. */
  onEvict?: (key: string) => void;
  /**
   * How often waiters also look at the disk, as a backstop to `Deno.watchFs`.
   * @default 250
   */
  pollMs?: number;
}

type WaitResult = "done" | "failed" | "timeout";

/** What a proxy shows of its cache: where it is, how full, and where an entry lives. */
export interface CacheView {
  /** The real path of the cache directory. */
  readonly dir: string;
  /** The size limit in body bytes. */
  readonly maxBytes: number;
  /** Body bytes of the entries this process knows. */
  readonly bytes: number;
  /** Entries this process knows. */
  readonly entries: number;
  /** The absolute path of an entry's body (`key`: the decoded URL path minus its `/`). */
  pathOf(key: string): string;
}

/** The cache directory: entries, downloads in progress, waiters, eviction. */
export class DiskCache implements CacheView {
  /** The real path of the cache directory. */
  readonly dir: string;
  /** The size limit in body bytes. */
  readonly maxBytes: number;
  readonly #log: Logger;
  readonly #onEvict?: (key: string) => void;
  /** Known complete entries, least recently used first. */
  readonly #index = new Map<string, number>();
  readonly #pins = new Map<string, number>();
  readonly #waiters = new Map<string, Set<(result: "done" | "failed") => void>>();
  #bytes = 0;
  #watcher: Deno.FsWatcher | undefined;
  #watching: Promise<void> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #evictScheduled = false;

  private constructor(dir: string, options: DiskCacheOptions) {
    this.dir = dir;
    this.maxBytes = options.maxBytes;
    this.#log = options.log;
    this.#onEvict = options.onEvict;
  }

  /** Opens (creating if needed) a cache directory and starts watching it. */
  static async open(options: DiskCacheOptions): Promise<DiskCache> {
    await Deno.mkdir(options.dir, { recursive: true });
    const dir = await Deno.realPath(options.dir);
    const cache = new DiskCache(dir, options);
    if ((await isTmpfs(dir)) === false) {
      options.log.warn(
        `cache directory ${dir} is not on a tmpfs: every cached body costs disk writes; use e.g. /dev/shm/flowsched-cache`,
        { cache: dir },
      );
    }
    await cache.#scan(dir, "");
    cache.#watcher = Deno.watchFs(dir, { recursive: true });
    cache.#watching = cache.#watch(cache.#watcher);
    cache.#poll = setInterval(() => cache.#pollWaiters(), options.pollMs ?? POLL_MS);
    cache.#evict();
    return cache;
  }

  /** Body bytes of the entries this process knows. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries this process knows. */
  get entries(): number {
    return this.#index.size;
  }

  /** The absolute path of an entry's body. */
  pathOf(key: string): string {
    return join(this.dir, key);
  }

  /** Whether this process knows `key` as a complete entry (no I/O). */
  knows(key: string): boolean {
    return this.#index.has(key);
  }

  /** Whether a complete entry exists (on disk, whoever stored it). */
  async has(key: string): Promise<boolean> {
    if (this.#index.has(key)) return true;
    try {
      return (await Deno.stat(this.pathOf(key))).isFile;
    } catch {
      return false;
    }
  }

  /**
   * Opens a complete entry for serving, or `null` if there is none. The
   * entry is pinned until its body has been read or cancelled.
   */
  async open(key: string): Promise<OpenEntry | null> {
    this.#pin(key);
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.#unpin(key);
      }
    };
    const path = this.pathOf(key);
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(path);
      const size = (await file.stat()).size;
      const meta = JSON.parse(await Deno.readTextFile(path + HEADERS)) as EntryMeta;
      if (meta.size !== size) throw new Error(`size ${size} differs from the stored ${meta.size}`);
      this.#remember(key, size);
      if (size <= SMALL_BODY) {
        const bytes = new Uint8Array(size);
        let at = 0;
        while (at < size) {
          const n = await file.read(bytes.subarray(at));
          if (n === null) throw new Error("entry shrank while read");
          at += n;
        }
        file.close();
        release();
        return { meta, size, body: bytes };
      }
      const handle = file;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const buffer = new Uint8Array(64 * 1024);
            const n = await handle.read(buffer);
            if (n === null) {
              handle.close();
              release();
              controller.close();
            } else {
              controller.enqueue(buffer.subarray(0, n));
            }
          } catch (error) {
            release();
            controller.error(error);
          }
        },
        cancel() {
          try {
            handle.close();
          } catch { /* already closed */ }
          release();
        },
      });
      return { meta, size, body };
    } catch (error) {
      try {
        file?.close();
      } catch { /* already closed */ }
      release();
      if (
        !(error instanceof Deno.errors.NotFound) && !(error instanceof Deno.errors.NotADirectory)
      ) {
        this.#log.warn("cache entry unreadable; treated as a miss", {
          key,
          error: (error as Error).message,
        });
      }
      return null;
    }
  }

  /**
   * Claims the download of `key` by creating `<key>.tmp` exclusively.
   * Returns the open file, `"busy"` if another download (this process or
   * another) holds it, or `"uncacheable"` if the path cannot be created
   * (e.g. a file where a directory is needed).
   */
  async claim(key: string, staleMs: number): Promise<Deno.FsFile | "busy" | "uncacheable"> {
    const tmp = this.pathOf(key) + TMP;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await Deno.mkdir(dirname(tmp), { recursive: true });
        const file = await Deno.open(tmp, { write: true, createNew: true });
        this.#pin(key);
        return file;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) return "uncacheable";
        // A .tmp nobody has written to for long belongs to a dead process.
        try {
          const info = await Deno.stat(tmp);
          const age = Date.now() - (info.mtime?.getTime() ?? Date.now());
          if (age < staleMs) return "busy";
          this.#log.warn("removing a stale download", { key, ageMs: age });
          await Deno.remove(tmp);
        } catch {
          // Gone meanwhile: try again.
        }
      }
    }
    return "busy";
  }

  /**
   * Completes a download: closes `file`, writes the headers, renames the body
   * into place. Eviction runs after the current tasks, so waiters that
   * resolve now can pin the entry first.
   */
  async commit(key: string, file: Deno.FsFile, meta: EntryMeta): Promise<void> {
    const path = this.pathOf(key);
    try {
      file.close();
      await Deno.writeTextFile(path + HEADERS, JSON.stringify(meta));
      await Deno.rename(path + TMP, path);
      this.#remember(key, meta.size);
    } catch (error) {
      await Deno.remove(path + TMP).catch(() => {});
      throw error;
    } finally {
      this.#unpin(key);
    }
  }

  /** Abandons a download: its partial body is removed, never served. */
  async abandon(key: string, file: Deno.FsFile): Promise<void> {
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(this.pathOf(key) + TMP).catch(() => {});
    this.#unpin(key);
  }

  /**
   * Waits until `key` is complete (`"done"`), its download was abandoned
   * (`"failed"`), or `timeoutMs` passed.
   */
  async waitFor(key: string, timeoutMs: number): Promise<WaitResult> {
    const { promise, resolve } = Promise.withResolvers<WaitResult>();
    const waiter = (result: "done" | "failed") => resolve(result);
    let set = this.#waiters.get(key);
    if (!set) this.#waiters.set(key, set = new Set());
    set.add(waiter);
    const timer = setTimeout(() => resolve("timeout"), timeoutMs);
    // It may have completed before the waiter was registered.
    this.#check(key);
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
      set.delete(waiter);
      if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key);
    }
  }

  /** Stops watching. */
  async close(): Promise<void> {
    clearInterval(this.#poll);
    this.#watcher?.close();
    await this.#watching;
    for (const set of this.#waiters.values()) for (const waiter of set) waiter("failed");
  }

  #pin(key: string) {
    this.#pins.set(key, (this.#pins.get(key) ?? 0) + 1);
  }

  #unpin(key: string) {
    const n = (this.#pins.get(key) ?? 1) - 1;
    if (n <= 0) this.#pins.delete(key);
    else this.#pins.set(key, n);
    this.#scheduleEvict();
  }

  #remember(key: string, size: number) {
    const old = this.#index.get(key);
    if (old !== undefined) {
      this.#bytes -= old;
      this.#index.delete(key);
    }
    this.#index.set(key, size);
    this.#bytes += size;
    this.#scheduleEvict();
  }

  #scheduleEvict() {
    if (this.#evictScheduled || this.#bytes <= this.maxBytes) return;
    this.#evictScheduled = true;
    setTimeout(() => {
      this.#evictScheduled = false;
      this.#evict();
    }, 0);
  }

  #evict() {
    if (this.#bytes <= this.maxBytes) return;
    for (const [key, size] of this.#index) {
      if (this.#bytes <= this.maxBytes) break;
      if (this.#pins.has(key)) continue;
      this.#index.delete(key);
      this.#bytes -= size;
      const path = this.pathOf(key);
      // Body first: from then on nobody sees the entry as complete.
      try {
        Deno.removeSync(path);
        Deno.removeSync(path + HEADERS);
      } catch { /* another process evicted it */ }
      this.#log.debug("evicted", { key, size });
      this.#onEvict?.(key);
    }
  }

  async #scan(dir: string, prefix: string) {
    for await (const entry of Deno.readDir(dir)) {
      const key = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory) await this.#scan(join(dir, entry.name), key);
      else if (entry.isFile && !entry.name.endsWith(TMP) && !entry.name.endsWith(HEADERS)) {
        try {
          this.#remember(key, (await Deno.stat(join(dir, entry.name))).size);
        } catch { /* removed meanwhile */ }
      }
    }
  }

  async #watch(watcher: Deno.FsWatcher) {
    try {
      for await (const event of watcher) {
        if (this.#waiters.size === 0) continue;
        for (const path of event.paths) {
          if (!path.startsWith(this.dir + "/")) continue;
          let key = path.slice(this.dir.length + 1);
          if (key.endsWith(HEADERS)) continue;
          if (key.endsWith(TMP)) {
            key = key.slice(0, -TMP.length);
            // `remove [x.tmp]` comes first on success too: look at x, not at the event.
            if (event.kind === "remove" && this.#waiters.has(key)) this.#check(key);
            continue;
          }
          if (!this.#waiters.has(key)) continue;
          if (event.kind === "rename" || event.kind === "create" || event.kind === "modify") {
            this.#settle(key, "done");
          }
        }
      }
    } catch (error) {
      this.#log.warn("cache watcher stopped", { error: (error as Error).message });
    }
  }

  /** Settles the waiters of `key` from what is on disk now. */
  async #check(key: string) {
    const path = this.pathOf(key);
    const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
    if (await exists(path)) return this.#settle(key, "done");
    if (!(await exists(path + TMP))) {
      // Renamed in between? Look once more before calling it a failure.
      this.#settle(key, (await exists(path)) ? "done" : "failed");
    }
  }

  #settle(key: string, result: "done" | "failed") {
    const set = this.#waiters.get(key);
    if (!set) return;
    for (const waiter of [...set]) waiter(result);
  }

  #pollWaiters() {
    for (const key of this.#waiters.keys()) this.#check(key);
  }
}
