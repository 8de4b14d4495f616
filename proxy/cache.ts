/**
 * The proxy's disk cache, shareable by several proxy processes on one host.
 *
 * Layout. An entry's key is its normalised URL path (see `cacheKey`); its
 * files are named by the SHA-256 of the key, fanned out over 256 directories
 * by the first two hex digits. For a key hashing to `ab12…` in directory `C`:
 *
 * - `C/ab/ab12….tmp` — the body while it downloads. Created with O_EXCL:
 *   whoever creates it owns the download; everyone else waits. The owner
 *   holds an exclusive `flock` on it until the file is renamed or removed
 *   (only then is it closed), and the kernel drops that lock if the owner
 *   dies: a `.tmp` whose lock can be taken is removed at once (by the next
 *   claim, by waiters polling, when the cache opens), so a restarted or
 *   surviving proxy never waits on, or keeps, a dead process's download.
 *   Whoever removes it holds its lock meanwhile, and removes the name only
 *   if it still names the file it locked.
 * - `C/ab/ab12….meta` — `{status, headers, size, url, storedAt}`, written
 *   before the body is renamed into place. `url` is the key; opening an entry
 *   checks it, and the size, against what was asked for and what is there.
 * - `C/ab/ab12….body` — the complete body, renamed from `.tmp` when every byte
 *   has arrived. Its existence is what "cached" means; a partial or failed
 *   download never gets this name (its `.tmp` is removed).
 *
 * A URL path only chooses a hash; every file name is made of a hash and a
 * fixed suffix. So no path can name another entry, its metadata or its
 * `.tmp`, and nothing is ever written outside the cache directory, whatever
 * the path and whatever the order of requests. The 256 directories are
 * created when the cache opens and are all there ever is: a request creates
 * no directory, a failed download leaves no file, and the cache needs 257
 * inotify watches however many paths are asked for.
 *
 * Waiters learn that an entry completed through `Deno.watchFs` events: on
 * `rename(h.tmp, h.body)` it reports `remove [h.tmp]`, `rename [h.body]`,
 * then `rename [h.tmp, h.body]`. Completion is keyed on the `.body`; a
 * `remove` of the `.tmp` only means failure if the `.body` does not exist
 * afterwards. A slow poll backs the watcher up.
 *
 * Memory. Bodies read whole (up to 256 KiB) are also kept in memory, by key,
 * within `memoryBytes`: a repeated hit then touches no file. Complete entries
 * never change in place (a new body gets a new file through a rename), so a
 * copy stays right until its files are removed or replaced, by this process
 * or another; the watcher's events on them drop it (and an event queue
 * overflow drops every copy).
 *
 * Size. Body bytes of the entries this process knows, plus the room given to
 * its downloads in flight, stay within `maxBytes`: a download asks for room
 * (`reserve`) once its size is known, least recently used entries are evicted
 * to make it, and when entries being read (pinned, never evicted) hold too
 * much, or the body is larger than the whole cache, the room is refused and
 * the body is not stored. Each process keeps its own count: two processes
 * sharing a directory each keep their own limit.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Logger } from "../cli/log.ts";
import { Errno, NativeError } from "../ffi/errors.ts";
import { FileDescriptor, fileVersion } from "../ffi/file_descriptor.ts";
import { C } from "../ffi/libc.ts";
import { type Mapping, MappingCache } from "../ffi/mapping_cache.ts";

const TMP = ".tmp";
const META = ".meta";
const BODY = ".body";
/** Longest key stored; longer paths pass through uncached. */
const MAX_KEY = 8192;
/** Bodies up to this size are read into memory at once when served (and kept there). */
const SMALL_BODY = 256 * 1024;
/** Idle mappings of large bodies kept for the next hits. */
const MAPPINGS_KEPT = 16;
/** Default of `DiskCacheOptions.memoryBytes`. */
const MEMORY_BYTES = 32 * 1024 * 1024;
const POLL_MS = 250;
/** Longer than any gap between creating a `.tmp` and locking it. */
const CLAIM_GRACE_MS = 1000;
/** The fan-out directories, `00` … `ff`. */
const FAN_OUT = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const ENTRY_NAME = /^([0-9a-f]{64})(\.tmp|\.meta|\.body)$/;

/** What is kept beside a body. */
export interface EntryMeta {
  status: number;
  headers: [string, string][];
  size: number;
  /** The entry's key (its normalised URL path). */
  url: string;
  storedAt: string;
}

/**
 * An entry opened for serving. A small body is bytes in memory, shared
 * between hits (do not write to them); `release` does nothing. A large body
 * is a view over the file's read-only mapping, valid until `release`, which
 * unmaps it and unpins the entry (until then it is never evicted); call it
 * once, when the body has been sent or dropped.
 */
export interface OpenEntry {
  readonly meta: EntryMeta;
  readonly size: number;
  readonly body: Uint8Array;
  /**
   * The body is the file's mapping: hand it to a socket write, where the
   * kernel reads it (a file that shrank fails that write with EFAULT), and
   * never read it with plain loads (which would raise SIGBUS instead).
   */
  readonly mapped: boolean;
  /** Unpins the entry; call it once, when the body has been sent or dropped. */
  release(): void;
}

/** A small entry kept in memory: what a hit answers without touching a file. */
interface MemoryEntry extends OpenEntry {
  readonly id: string;
}

/** A large entry whose body's mapping may still be held (see `Cache.kept`). */
interface MappedEntry {
  readonly id: string;
  readonly meta: EntryMeta;
  readonly size: number;
  /** The version of its body file that was checked and mapped. */
  readonly version: string;
}

const NOTHING_TO_RELEASE = () => {};

/** The files of one entry. */
export interface EntryFiles {
  /** The complete body. */
  readonly body: string;
  /** Its metadata. */
  readonly meta: string;
  /** The body while it downloads. */
  readonly tmp: string;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The cache key of a URL pathname (as `URL.pathname` gives it,
 * percent-encoded), or `null` if it is not stored. Percent-encodings are
 * normalised as RFC 3986 §6.2.2 says (unreserved characters decoded, hex
 * digits upper case), so equivalent spellings share one entry; `%2F` stays
 * encoded. Too long paths, dot segments and characters a request line cannot
 * carry are not stored (a URL parser never gives those).
 */
export function cacheKey(pathname: string): string | null {
  if (!pathname.startsWith("/") || pathname.length > MAX_KEY) return null;
  const key = pathname.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  if (/[^\x21-\x7e]/.test(key) || /\/\.\.?(?:\/|$)/.test(key)) return null;
  return key;
}

/** The hex SHA-256 of a key: the name of its entry. */
function entryId(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** The files of the entry of `key`, relative to the cache directory. */
export function entryFiles(key: string): EntryFiles {
  return filesOf(entryId(key));
}

function filesOf(id: string, dir?: string): EntryFiles {
  const stem = `${id.slice(0, 2)}/${id}`;
  const at = (suffix: string) => dir ? join(dir, stem + suffix) : stem + suffix;
  return { body: at(BODY), meta: at(META), tmp: at(TMP) };
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
  /** Body bytes kept (stored, being read, or downloading into room given to them). */
  maxBytes: number;
  log: Logger;
  /** Called once per eviction. */
  onEvict?: () => void;
  /**
   * Make the file operations of hits and downloads synchronous (see `DiskCache.syncIo`).
   * @default whether `dir` is on a tmpfs
   */
  syncIo?: boolean;
  /**
   * Memory for copies of small bodies (up to 256 KiB), least recently used
   * dropped first; 0 keeps none.
   * @default 33554432
   */
  memoryBytes?: number;
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
  /** The absolute paths of the files of the entry of `key` (a key as `cacheKey` gives it). */
  files(key: string): { readonly body: string; readonly meta: string; readonly tmp: string };
}

/** The cache directory: entries, downloads in progress, waiters, eviction. */
export class DiskCache implements CacheView {
  /** The real path of the cache directory. */
  readonly dir: string;
  /** The size limit in body bytes. */
  readonly maxBytes: number;
  readonly #log: Logger;
  readonly #onEvict?: () => void;
  /** Known complete entries by id, least recently used first. */
  readonly #index = new Map<string, number>();
  readonly #pins = new Map<string, number>();
  /** Room given to downloads in flight, by id. */
  readonly #reserved = new Map<string, number>();
  readonly #waiters = new Map<string, Set<(result: "done" | "failed") => void>>();
  /** Small entries in memory by key, least recently used first; and their keys by id. */
  readonly #memory = new Map<string, MemoryEntry>();
  readonly #memoryKeys = new Map<string, string>();
  readonly #memoryLimit: number;
  /**
   * Mappings of large bodies, shared by the hits on them; idle ones are kept
   * (mapping a file anew for every hit cost half the rate of 1 MiB hits) and
   * unmapped when their entry's files change, so a removed body's memory goes.
   */
  readonly #mappings = new MappingCache(MAPPINGS_KEPT);
  /** The version of each entry's last mapping, by entry id. */
  readonly #mappedVersions = new Map<string, string>();
  /**
   * Large entries checked against their metadata and mapped, by key (and
   * their keys by id): a hit on one takes its mapping again without a file
   * call, until an event on its files or an eviction forgets it.
   */
  readonly #mappedEntries = new Map<string, MappedEntry>();
  readonly #mappedKeys = new Map<string, string>();
  #memoryBytes = 0;
  /** Counts the watcher's events on complete entries' files (a copy read across one is not kept). */
  #changes = 0;
  #bytes = 0;
  #reservedBytes = 0;
  #watcher: Deno.FsWatcher | undefined;
  #watching: Promise<void> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #evictScheduled = false;
  #syncIo = false;

  private constructor(dir: string, options: DiskCacheOptions) {
    this.dir = dir;
    this.maxBytes = options.maxBytes;
    this.#log = options.log;
    this.#onEvict = options.onEvict;
    this.#memoryLimit = options.memoryBytes ?? MEMORY_BYTES;
  }

  /** Opens (creating if needed) a cache directory and starts watching it. */
  static async open(options: DiskCacheOptions): Promise<DiskCache> {
    await Deno.mkdir(options.dir, { recursive: true });
    const dir = await Deno.realPath(options.dir);
    const cache = new DiskCache(dir, options);
    const tmpfs = await isTmpfs(dir);
    cache.#syncIo = options.syncIo ?? tmpfs === true;
    if (tmpfs === false) {
      options.log.warn(
        `cache directory ${dir} is not on a tmpfs: every cached body costs disk writes; use e.g. /dev/shm/flowsched-cache`,
        { cache: dir },
      );
    }
    // Every directory exists before the watch starts, so none is ever new to it.
    await Promise.all(FAN_OUT.map((name) => Deno.mkdir(join(dir, name), { recursive: true })));
    await cache.#scan();
    cache.#watcher = Deno.watchFs(dir, { recursive: true });
    cache.#watching = cache.#watch(cache.#watcher);
    cache.#poll = setInterval(() => cache.#pollWaiters(), options.pollMs ?? POLL_MS);
    cache.#evict();
    return cache;
  }

  /**
   * Whether hits and downloads use synchronous file calls: on a tmpfs they
   * only copy memory, and each asynchronous call would cost two thread hops
   * (on the host a small hit takes 0.1 ms instead of 0.17). Elsewhere a call
   * may wait for a disk, so it stays off the event loop. Waiting for a lock,
   * scans and the handling of dead processes' files stay asynchronous.
   */
  get syncIo(): boolean {
    return this.#syncIo;
  }

  /** Body bytes of the entries this process knows. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries this process knows. */
  get entries(): number {
    return this.#index.size;
  }

  /** Bytes of the small bodies kept in memory, and how many there are. */
  get memory(): { bytes: number; entries: number } {
    return { bytes: this.#memoryBytes, entries: this.#memory.size };
  }

  /** Mappings of large bodies held (in use or idle), and the hits using them now. */
  get mapped(): { mappings: number; references: number } {
    return { mappings: this.#mappings.size, references: this.#mappings.references };
  }

  /** The absolute paths of the files of the entry of `key`. */
  files(key: string): EntryFiles {
    return filesOf(entryId(key), this.dir);
  }

  /** Whether this process knows `key` as a complete entry (no I/O). */
  knows(key: string): boolean {
    return this.#index.has(entryId(key));
  }

  /** Whether a complete entry exists (on disk, whoever stored it). */
  async has(key: string): Promise<boolean> {
    const id = entryId(key);
    if (this.#index.has(id)) return true;
    try {
      return (await stat(filesOf(id, this.dir).body, this.#syncIo)).isFile;
    } catch {
      return false;
    }
  }

  /**
   * The entry of `key` if its body is kept in memory or its mapping is held
   * (what `open` answers at once, without touching a file), now the most
   * recently used; else undefined. A mapped one is pinned until `release()`.
   */
  kept(key: string): OpenEntry | undefined {
    const kept = this.#memory.get(key);
    if (kept) {
      // Most recently used, here and in the index.
      this.#memory.delete(key);
      this.#memory.set(key, kept);
      this.#touch(kept.id, kept.size);
      return kept;
    }
    const known = this.#mappedEntries.get(key);
    if (!known) return undefined;
    const mapping = this.#mappings.reuse(known.version);
    if (!mapping) {
      // Unmapped since, as an idle mapping past the ones kept: `open` maps it again.
      this.#unmap(known.id);
      return undefined;
    }
    this.#touch(known.id, known.size);
    this.#pin(known.id);
    return this.#mappedEntry(known, mapping, () => this.#unpin(known.id));
  }

  /**
   * Opens a complete entry for serving, or `null` if there is none. A large
   * entry is pinned, and its mapping held, until `release()`. An entry whose
   * metadata is missing or does not match it is removed.
   */
  async open(key: string): Promise<OpenEntry | null> {
    const kept = this.kept(key);
    if (kept) return kept;
    const id = entryId(key);
    const changes = this.#changes;
    this.#pin(id);
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.#unpin(id);
      }
    };
    const files = filesOf(id, this.dir);
    const sync = this.#syncIo;
    let file: Deno.FsFile | undefined;
    let checked: { meta: EntryMeta; inode: number | null; size: number };
    try {
      file = sync ? Deno.openSync(files.body) : await Deno.open(files.body);
    } catch (error) {
      release();
      this.#forget(id);
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#log.warn("cache entry unreadable; treated as a miss", { key, error: String(error) });
      }
      return null;
    }
    try {
      const info = sync ? file.statSync() : await file.stat();
      const size = info.size;
      const meta = JSON.parse(
        sync ? Deno.readTextFileSync(files.meta) : await Deno.readTextFile(files.meta),
      ) as EntryMeta;
      if (meta.url !== key || meta.size !== size || meta.status !== 200) {
        throw new Error(
          `metadata for ${JSON.stringify(meta.url)}, ${meta.size} bytes; body ${size} bytes`,
        );
      }
      this.#remember(id, size);
      if (size <= SMALL_BODY) {
        const bytes = new Uint8Array(size);
        let at = 0;
        while (at < size) {
          const view = bytes.subarray(at);
          const n = sync ? file.readSync(view) : await file.read(view);
          if (n === null) throw new Error("entry shrank while read");
          at += n;
        }
        file.close();
        release();
        const entry = { id, meta, size, body: bytes, mapped: false, release: NOTHING_TO_RELEASE };
        // An event seen meanwhile may have been this entry's: its copy could be stale already.
        return changes === this.#changes ? this.#keep(key, entry) : entry;
      }
      file.close();
      checked = { meta, inode: info.ino, size };
    } catch (error) {
      try {
        file.close();
      } catch { /* already closed */ }
      release();
      // Body first: from then on nobody sees the entry as complete.
      await Deno.remove(files.body).catch(() => {});
      await Deno.remove(files.meta).catch(() => {});
      this.#forget(id);
      this.#log.warn("cache entry inconsistent; removed", { key, error: String(error) });
      return null;
    }
    // The entry is sound: failing to map it now (out of descriptors or memory) is a miss, no more.
    let mapping: Mapping | null;
    try {
      mapping = this.#map(id, files.body, checked.inode, checked.size);
    } catch (error) {
      release();
      this.#log.warn("cache entry could not be mapped; treated as a miss", {
        key,
        error: String(error),
      });
      return null;
    }
    if (!mapping) {
      // Replaced or removed since it was opened: the next open sees what is there now.
      release();
      return null;
    }
    // An event seen meanwhile may have been this entry's: the next hit checks it again.
    if (changes === this.#changes) {
      const version = this.#mappedVersions.get(id)!;
      this.#mappedEntries.set(key, { id, meta: checked.meta, size: checked.size, version });
      this.#mappedKeys.set(id, key);
    }
    return this.#mappedEntry(checked, mapping, release);
  }

  /** An open entry on `mapping`, its body; its `release` drops the mapping and runs `unpin`, once. */
  #mappedEntry(
    entry: { meta: EntryMeta; size: number },
    mapping: Mapping,
    unpin: () => void,
  ): OpenEntry {
    let released = false;
    return {
      meta: entry.meta,
      size: entry.size,
      body: new Uint8Array(
        Deno.UnsafePointerView.getArrayBuffer(mapping.file.pointerAt(0)!, entry.size),
      ),
      mapped: true,
      release: () => {
        if (released) return;
        released = true;
        this.#mappings.release(mapping);
        unpin();
      },
    };
  }

  /**
   * Claims the download of `key` by creating its `.tmp` exclusively.
   * Returns the open file, `"busy"` if another download (this process or
   * another) holds it, or `"uncacheable"` if the file cannot be created.
   */
  async claim(key: string): Promise<Deno.FsFile | "busy" | "uncacheable"> {
    const id = entryId(key);
    const { tmp } = filesOf(id, this.dir);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const create = { write: true, createNew: true };
        const file = this.#syncIo ? Deno.openSync(tmp, create) : await Deno.open(tmp, create);
        // The lock says "its owner lives": the kernel drops it when the owner dies.
        await file.lock(true);
        if (!(await pathNames(tmp, file, this.#syncIo))) {
          // Taken for a dead claim while this one stalled between create and
          // lock for longer than the grace time: its name is gone, start again.
          file.close();
          continue;
        }
        this.#pin(id);
        return file;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          // Someone removed a fan-out directory: it is one of the 256, so make it again.
          await Deno.mkdir(join(this.dir, id.slice(0, 2)), { recursive: true }).catch(() => {});
          continue;
        }
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          this.#log.warn("cannot create a cache file; passing through", {
            key,
            error: String(error),
          });
          return "uncacheable";
        }
        const dead = await removeIfDead(tmp);
        if (dead === true) this.#log.warn("removed the download of a dead process", { key });
        // Gone meanwhile ("gone"): try again.
        else if (dead !== "gone") return "busy";
      }
    }
    return "busy";
  }

  /**
   * Asks for room for a claimed download of `size` bytes. Least recently
   * used entries that nobody reads are evicted to make it; returns false
   * (nothing evicted) if they cannot make enough, and then the body must not
   * be stored.
   */
  reserve(key: string, size: number): boolean {
    const id = entryId(key);
    if (this.#reserved.has(id)) return true;
    if (!Number.isSafeInteger(size) || size < 0 || size > this.maxBytes) return false;
    const excess = this.#bytes + this.#reservedBytes + size - this.maxBytes;
    if (excess > 0) {
      let evictable = 0;
      for (const [other, bytes] of this.#index) if (!this.#pins.has(other)) evictable += bytes;
      if (evictable < excess) return false;
      this.#evictDownTo(this.maxBytes - size);
    }
    this.#reserved.set(id, size);
    this.#reservedBytes += size;
    return true;
  }

  /**
   * Completes a download: writes the metadata, renames the body into place,
   * closes `file`. The file stays open, and so locked, until it is renamed
   * (or removed): an unlocked `.tmp` is a dead process's, and anyone may
   * remove it. The entry stays pinned until the current tasks ran, so
   * waiters that resolve now can open it before anything evicts it.
   */
  async commit(key: string, file: Deno.FsFile, meta: EntryMeta): Promise<void> {
    const id = entryId(key);
    const files = filesOf(id, this.dir);
    try {
      if (this.#syncIo) {
        Deno.writeTextFileSync(files.meta, JSON.stringify(meta));
        Deno.renameSync(files.tmp, files.body);
      } else {
        await Deno.writeTextFile(files.meta, JSON.stringify(meta));
        await Deno.rename(files.tmp, files.body);
      }
      this.#unreserve(id);
      this.#remember(id, meta.size);
    } catch (error) {
      this.#unreserve(id);
      await removeOwn(files.tmp, file, this.#syncIo);
      throw error;
    } finally {
      closeQuietly(file);
      setTimeout(() => this.#unpin(id), 0);
    }
  }

  /** Abandons a download: its partial body is removed, never served. */
  async abandon(key: string, file: Deno.FsFile): Promise<void> {
    const id = entryId(key);
    // Removed before it is closed: unlocked, it would be anyone's to remove.
    await removeOwn(filesOf(id, this.dir).tmp, file, this.#syncIo);
    closeQuietly(file);
    this.#unreserve(id);
    this.#unpin(id);
  }

  /**
   * Waits until `key` is complete (`"done"`), its download was abandoned
   * (`"failed"`), or `timeoutMs` passed.
   */
  async waitFor(key: string, timeoutMs: number): Promise<WaitResult> {
    const id = entryId(key);
    const { promise, resolve } = Promise.withResolvers<WaitResult>();
    const waiter = (result: "done" | "failed") => resolve(result);
    let set = this.#waiters.get(id);
    if (!set) this.#waiters.set(id, set = new Set());
    set.add(waiter);
    const timer = setTimeout(() => resolve("timeout"), timeoutMs);
    // It may have completed before the waiter was registered.
    this.#check(id);
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
      set.delete(waiter);
      if (set.size === 0 && this.#waiters.get(id) === set) this.#waiters.delete(id);
    }
  }

  /** Stops watching; unmaps the idle mappings (one in use goes when it is released). */
  async close(): Promise<void> {
    clearInterval(this.#poll);
    this.#watcher?.close();
    await this.#watching;
    this.#mappings.clear();
    for (const set of this.#waiters.values()) for (const waiter of set) waiter("failed");
  }

  #pin(id: string) {
    this.#pins.set(id, (this.#pins.get(id) ?? 0) + 1);
  }

  #unpin(id: string) {
    const n = (this.#pins.get(id) ?? 1) - 1;
    if (n <= 0) this.#pins.delete(id);
    else this.#pins.set(id, n);
    this.#scheduleEvict();
  }

  #unreserve(id: string) {
    const size = this.#reserved.get(id);
    if (size === undefined) return;
    this.#reserved.delete(id);
    this.#reservedBytes -= size;
  }

  #remember(id: string, size: number) {
    this.#forget(id);
    this.#index.set(id, size);
    this.#bytes += size;
    this.#scheduleEvict();
  }

  /** Keeps a small entry in memory if the budget allows; returns it. */
  #keep(key: string, entry: MemoryEntry): MemoryEntry {
    if (entry.size > this.#memoryLimit) return entry;
    this.#drop(entry.id);
    this.#memory.set(key, entry);
    this.#memoryKeys.set(entry.id, key);
    this.#memoryBytes += entry.size;
    // Least recently used first; the new entry fits on its own, so the loop ends before it.
    for (const old of this.#memory.values()) {
      if (this.#memoryBytes <= this.#memoryLimit) break;
      this.#drop(old.id);
    }
    return entry;
  }

  /**
   * A mapping of entry `id`'s body file at `path` if it is still the file
   * with inode `inode` and `size` bytes (the one whose metadata was checked),
   * shared with the hits on it before; null if it was replaced or removed
   * since.
   */
  #map(id: string, path: string, inode: number | null, size: number): Mapping | null {
    let descriptor: FileDescriptor;
    try {
      descriptor = FileDescriptor.open(path, C.O_RDONLY);
    } catch (error) {
      if (error instanceof NativeError && error.errno === Errno.ENOENT) return null;
      throw error;
    }
    let version: string;
    try {
      const status = descriptor.status();
      // Deno's inode is a number: compared as one (an inode past 2^53 is rounded alike).
      if (inode === null || Number(status.inode) !== inode || status.size !== size) {
        descriptor.close();
        return null;
      }
      version = fileVersion(status);
    } catch (error) {
      descriptor.close();
      throw error;
    }
    const mapping = this.#mappings.acquire({
      version,
      descriptor,
      close: () => descriptor.close(),
    });
    this.#mappedVersions.set(id, version);
    return mapping;
  }

  /** Unmaps entry `id`'s idle mapping, if it has one (its files changed). */
  #unmap(id: string) {
    this.#forgetMapped(id);
    const version = this.#mappedVersions.get(id);
    if (version === undefined) return;
    this.#mappedVersions.delete(id);
    this.#mappings.forget(version);
  }

  /** Drops the memory copy of entry `id`, if there is one. */
  #drop(id: string) {
    const key = this.#memoryKeys.get(id);
    if (key === undefined) return;
    this.#memoryKeys.delete(id);
    this.#memoryBytes -= this.#memory.get(key)!.size;
    this.#memory.delete(key);
  }

  /** Forgets the mapped entry `id` (its mapping stays while hits use it, or while idle). */
  #forgetMapped(id: string) {
    const key = this.#mappedKeys.get(id);
    if (key === undefined) return;
    this.#mappedKeys.delete(id);
    this.#mappedEntries.delete(key);
  }

  /** Entry `id` is now the most recently used. */
  #touch(id: string, size: number) {
    this.#index.delete(id);
    this.#index.set(id, size);
  }

  #forget(id: string) {
    this.#drop(id);
    this.#forgetMapped(id);
    const old = this.#index.get(id);
    if (old === undefined) return;
    this.#bytes -= old;
    this.#index.delete(id);
  }

  #scheduleEvict() {
    if (this.#evictScheduled || this.#bytes + this.#reservedBytes <= this.maxBytes) return;
    this.#evictScheduled = true;
    setTimeout(() => {
      this.#evictScheduled = false;
      this.#evict();
    }, 0);
  }

  #evict() {
    this.#evictDownTo(this.maxBytes);
  }

  /** Evicts unpinned entries, least recently used first, until the total is at most `limit`. */
  #evictDownTo(limit: number) {
    for (const [id, size] of this.#index) {
      if (this.#bytes + this.#reservedBytes <= limit) break;
      if (this.#pins.has(id)) continue;
      this.#forget(id);
      const files = filesOf(id, this.dir);
      // Body first: from then on nobody sees the entry as complete.
      try {
        Deno.removeSync(files.body);
        Deno.removeSync(files.meta);
      } catch { /* another process evicted it */ }
      this.#log.debug("evicted", { entry: id, size });
      this.#onEvict?.();
    }
  }

  /**
   * Indexes the complete entries on disk, removes what dead processes left
   * (stale `.tmp`, metadata without a body), and warns once about files that
   * are not part of the layout (they are neither counted nor touched).
   */
  async #scan() {
    const fanOut = new Set(FAN_OUT);
    const unsure: string[] = [];
    let foreign = 0;
    for await (const top of Deno.readDir(this.dir)) {
      if (!top.isDirectory || !fanOut.has(top.name)) foreign++;
    }
    for (const name of FAN_OUT) {
      const names = new Set<string>();
      for await (const entry of Deno.readDir(join(this.dir, name))) {
        const match = ENTRY_NAME.exec(entry.name);
        if (!entry.isFile || !match || !match[1].startsWith(name)) foreign++;
        else names.add(entry.name);
      }
      for (const file of names) {
        const [, id, suffix] = ENTRY_NAME.exec(file)!;
        const files = filesOf(id, this.dir);
        try {
          if (suffix === BODY) {
            this.#remember(id, (await Deno.stat(files.body)).size);
          } else if (suffix === TMP) {
            if ((await removeIfDead(files.tmp)) === "unsure") unsure.push(files.tmp);
          } else if (!names.has(id + BODY) && !names.has(id + TMP)) {
            // Metadata alone: an eviction or a crash stopped half way. A
            // download may have renamed its body meanwhile: look once more.
            if (!(await exists(files.body)) && !(await exists(files.tmp))) {
              await Deno.remove(files.meta);
            }
          }
        } catch { /* removed meanwhile */ }
      }
    }
    if (unsure.length > 0) {
      // Empty, unlocked and brand new: claimed just now, or by a process that
      // died just after claiming. Past the grace time it is one or the other.
      await new Promise((resolve) => setTimeout(resolve, CLAIM_GRACE_MS));
      for (const tmp of unsure) await removeIfDead(tmp);
    }
    if (foreign > 0) {
      this.#log.warn(
        `cache directory ${this.dir} holds ${foreign} names that are not cache entries (an older proxy's layout?); they are not counted against the size limit: remove them`,
        { cache: this.dir, foreign },
      );
    }
  }

  async #watch(watcher: Deno.FsWatcher) {
    try {
      for await (const event of watcher) {
        if (event.flag === "rescan") {
          // Events were lost: any kept copy may be stale.
          this.#changes++;
          for (const id of [...this.#memoryKeys.keys()]) this.#drop(id);
          for (const id of [...this.#mappedVersions.keys()]) this.#unmap(id);
        }
        if (
          this.#waiters.size === 0 && this.#memoryLimit === 0 && this.#mappedVersions.size === 0
        ) {
          continue;
        }
        for (const path of event.paths) {
          const match = ENTRY_NAME.exec(path.slice(path.lastIndexOf("/") + 1));
          if (!match) continue;
          const [, id, suffix] = match;
          // A kept entry's files were removed, replaced or written: its copy goes.
          if (suffix !== TMP && event.kind !== "access") {
            this.#changes++;
            this.#drop(id);
            this.#unmap(id);
          }
          if (!this.#waiters.has(id)) continue;
          // `remove [h.tmp]` comes first on success too: look at the body, not at the event.
          if (suffix === TMP && event.kind === "remove") this.#check(id);
          else if (
            suffix === BODY &&
            (event.kind === "rename" || event.kind === "create" || event.kind === "modify")
          ) this.#settle(id, "done");
        }
      }
    } catch (error) {
      this.#log.warn("cache watcher stopped", { error: String(error) });
    }
  }

  /** Settles the waiters of entry `id` from what is on disk now. */
  async #check(id: string) {
    const files = filesOf(id, this.dir);
    if (await exists(files.body)) return this.#settle(id, "done");
    // A download whose process died (another proxy sharing the directory) ends now.
    await removeIfDead(files.tmp);
    if (!(await exists(files.tmp))) {
      // Renamed in between? Look once more before calling it a failure.
      this.#settle(id, (await exists(files.body)) ? "done" : "failed");
    }
  }

  #settle(id: string, result: "done" | "failed") {
    const set = this.#waiters.get(id);
    if (!set) return;
    for (const waiter of [...set]) waiter(result);
  }

  #pollWaiters() {
    for (const id of this.#waiters.keys()) this.#check(id);
  }
}

function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}

/** Closes `file`, which may be closed already. */
function closeQuietly(file: Deno.FsFile): void {
  try {
    file.close();
  } catch { /* already closed */ }
}

/** Whether `path` names the file open as `file` (false if it names nothing). */
async function pathNames(path: string, file: Deno.FsFile, sync = false): Promise<boolean> {
  try {
    const [named, open] = sync
      ? [Deno.statSync(path), file.statSync()]
      : await Promise.all([Deno.stat(path), file.stat()]);
    return named.ino !== null && named.dev === open.dev && named.ino === open.ino;
  } catch {
    return false;
  }
}

/**
 * Removes the `.tmp` at `path` if it is the download open (and locked) as
 * `file`; whatever else it names now is somebody else's.
 */
async function removeOwn(path: string, file: Deno.FsFile, sync: boolean): Promise<void> {
  if (!(await pathNames(path, file, sync))) return;
  try {
    if (sync) Deno.removeSync(path);
    else await Deno.remove(path);
  } catch { /* gone meanwhile */ }
}

/** `Deno.stat`, or `Deno.statSync` (see `DiskCache.syncIo`). */
async function stat(path: string, sync: boolean): Promise<Deno.FileInfo> {
  return sync ? Deno.statSync(path) : await Deno.stat(path);
}

/**
 * Removes the `.tmp` at `path` if it was left by a process that died, and
 * says whether it did: `"gone"` if the name no longer names the file it
 * named when looked at (so look again), `"unsure"` if it may be a claim
 * about to lock it. Its owner holds an exclusive `flock` on it from
 * just after creating it until it is renamed or removed, and the kernel
 * releases that lock when the owner dies. So a lock we can take means a dead
 * owner, except in the moment between create and lock: the owner writes
 * nothing before it locks, so a non-empty file, or an empty one older than
 * `CLAIM_GRACE_MS`, is dead; a younger empty one is `"unsure"`.
 *
 * The verdict is about the file opened here, and the name may since have
 * moved on: renamed to a `.body` (its owner then closes it, so the lock can
 * be taken) and made again by a new claim. So the name is removed while the
 * lock is held, and only if it still names the locked file: nobody can
 * rename or remove a `.tmp` whose lock somebody else holds.
 */
async function removeIfDead(path: string): Promise<boolean | "unsure" | "gone"> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return "gone";
  }
  try {
    if (!(await file.tryLock(true))) return false;
    const info = await file.stat();
    if (info.size === 0 && Date.now() - (info.mtime?.getTime() ?? 0) <= CLAIM_GRACE_MS) {
      return "unsure";
    }
    // Renamed to a .body, or removed, since it was opened (and perhaps made again).
    if (!(await pathNames(path, file))) return "gone";
    await Deno.remove(path);
    return true;
  } catch {
    return false;
  } finally {
    file.close();
  }
}
