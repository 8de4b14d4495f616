/**
 * Getting an entry into the cache: one upstream request per path however
 * many ask at once (coalescing within a process, the `.tmp` claim across
 * processes), bodies written as they arrive, failures cleaned up. A body the
 * cache has no room for is handed to the client that asked, as it arrives,
 * and not stored.
 *
 * @module
 */

import type { Logger } from "../cli/log.ts";
import type { DiskCache, EntryMeta } from "./cache.ts";
import { guardBody } from "./guard.ts";
import type { ProxyStats } from "./stats.ts";
import { UpstreamError, UpstreamTimeout } from "./upstream.ts";
import type { UpstreamSet } from "./upstreams.ts";

/** Sees a body as it streams in (the prefetcher's HTML and CSS parsers). */
export interface BodySink {
  write(chunk: Uint8Array): void;
  end(): void;
}

/** Chooses a sink for a 200 response, by content type. */
export type Inspector = (
  path: string,
  contentType: string,
  depth: number,
) => BodySink | undefined;

/** How a fill ended. */
export type FillResult =
  /** The entry is complete in the cache (`shared`: another process downloaded it meanwhile). */
  | { kind: "cached"; shared?: boolean }
  /** Not cacheable (status other than 200): the whole answer, to pass on. */
  | { kind: "response"; status: number; headers: Headers; body: Uint8Array<ArrayBuffer> }
  /**
   * A 200 the cache has no room for (larger than the cache, or entries being
   * read hold the room): its body as it arrives, for the caller that started
   * the download only; the others get `uncacheable`.
   */
  | { kind: "stream"; headers: Headers; body: ReadableStream<Uint8Array> }
  /** Not stored: the caller passes the request through itself. */
  | { kind: "uncacheable" }
  /** Upstream failed (502) or took too long (504); `message` is for the log, not the client. */
  | { kind: "error"; status: 502 | 504; message: string };

/** A fill as one caller sees it. */
export interface Fill {
  result: FillResult;
  /** Joined a download already in flight in this process. */
  joined: boolean;
  /** The entry was brought in by the prefetcher (and this is the first client to use it). */
  prefetched: boolean;
}

interface InFlight {
  promise: Promise<FillResult>;
  prefetch: boolean;
  claimed: boolean;
}

/** Fetcher options. */
export interface FetcherOptions {
  cache: DiskCache;
  upstreams: UpstreamSet;
  stats: ProxyStats;
  log: Logger;
  /** Upper bound on one download, and on waiting for another process's. */
  timeoutMs: number;
  inspector?: Inspector;
}

/** Largest non-200 body passed on (they are error pages). */
const MAX_UNCACHED_BODY = 1024 * 1024;

/** Fills cache entries from upstream. */
export class Fetcher {
  readonly #options: FetcherOptions;
  readonly #inFlight = new Map<string, InFlight>();
  /** Entries the prefetcher stored that no client has used yet. */
  readonly #prefetched = new Set<string>();

  constructor(options: FetcherOptions) {
    this.#options = options;
  }

  /** Whether a download of `key` is in flight in this process. */
  busy(key: string): boolean {
    return this.#inFlight.has(key);
  }

  /** Counts a client's use of a prefetched entry once; true if it was one. */
  takePrefetched(key: string): boolean {
    return this.#prefetched.delete(key);
  }

  /**
   * Makes sure `key` (a cache key: the normalised path, which is also what is
   * requested upstream) is in the cache, downloading it if needed. Joins a
   * download in flight instead of starting another.
   */
  async fill(key: string, options: { prefetch?: boolean; depth?: number } = {}): Promise<Fill> {
    const running = this.#inFlight.get(key);
    if (running) {
      let prefetched = false;
      if (!options.prefetch && running.prefetch && !running.claimed) {
        running.claimed = true;
        prefetched = true;
      }
      const result = await running.promise;
      return {
        result: result.kind === "stream" ? { kind: "uncacheable" } : result,
        joined: true,
        prefetched,
      };
    }
    const record: InFlight = {
      promise: this.#download(key, options.depth ?? 0, options.prefetch ?? false),
      prefetch: options.prefetch ?? false,
      claimed: false,
    };
    this.#inFlight.set(key, record);
    try {
      const result = await record.promise;
      if (record.prefetch && !record.claimed && result.kind === "cached") {
        this.#prefetched.add(key);
      }
      if (result.kind === "stream" && record.prefetch) {
        // Nobody to hand it to: a client asking later passes it through.
        result.body.cancel().catch(() => {});
        return { result: { kind: "uncacheable" }, joined: false, prefetched: false };
      }
      return { result, joined: false, prefetched: false };
    } finally {
      this.#inFlight.delete(key);
    }
  }

  async #download(key: string, depth: number, prefetch: boolean): Promise<FillResult> {
    const { cache, log } = this.#options;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await cache.has(key)) return { kind: "cached" };
      const claim = await cache.claim(key);
      if (claim === "uncacheable") return { kind: "uncacheable" };
      if (claim === "busy") {
        // Another process downloads it: wait for its rename (or its failure, then retry).
        const waited = await cache.waitFor(key, this.#options.timeoutMs);
        if (waited === "done") {
          this.#options.stats.sharedWaits++;
          return { kind: "cached", shared: true };
        }
        if (waited === "timeout") {
          return {
            kind: "error",
            status: 504,
            message:
              `${key}: another proxy's download did not finish in ${this.#options.timeoutMs} ms`,
          };
        }
        log.info("a shared download failed; retrying", { path: key });
        continue;
      }
      if (prefetch) this.#options.stats.prefetched++;
      return await this.#own(key, depth, claim);
    }
    return { kind: "error", status: 502, message: `${key}: the download failed twice` };
  }

  async #own(key: string, depth: number, file: Deno.FsFile): Promise<FillResult> {
    const { cache, upstreams, stats, log, timeoutMs } = this.#options;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let sink: BodySink | undefined;
    let owned = true;
    let streamed = false;
    try {
      const response = await upstreams.request(key, { signal: controller.signal });
      if (response.status !== 200) {
        owned = false;
        await cache.abandon(key, file);
        const body = await readBounded(response.body, MAX_UNCACHED_BODY);
        return { kind: "response", status: response.status, headers: response.headers, body };
      }
      const contentType = response.headers.get("content-type") ?? "";
      sink = this.#options.inspector?.(key, contentType, depth);
      const expected = Number(response.headers.get("content-length") ?? 0);
      if (!cache.reserve(key, expected)) {
        owned = false;
        await cache.abandon(key, file);
        stats.notStored++;
        log.info("not stored: the cache has no room for it", {
          path: key,
          size: expected,
          cacheSize: cache.maxBytes,
        });
        streamed = true;
        const parser = sink;
        const body = guardBody(response.body, {
          idleMs: timeoutMs,
          abort: () => controller.abort(),
          onChunk: (chunk) => {
            stats.bytesFetched += chunk.byteLength;
            feed(parser, chunk);
          },
          onEnd: () => feed(parser, null),
        });
        return { kind: "stream", headers: response.headers, body };
      }
      let size = 0;
      for await (const chunk of response.body) {
        feed(sink, chunk);
        await writeAll(file, chunk, cache.syncIo);
        size += chunk.byteLength;
        stats.bytesFetched += chunk.byteLength;
      }
      if (size !== expected) throw new UpstreamError(`${key}: got ${size} of ${expected} bytes`);
      const meta: EntryMeta = {
        status: 200,
        headers: [...response.headers],
        size,
        url: key,
        storedAt: new Date().toISOString(),
      };
      owned = false;
      await cache.commit(key, file, meta);
      log.debug("stored", { path: key, size, depth });
      return { kind: "cached" };
    } catch (error) {
      if (owned) await cache.abandon(key, file);
      stats.failedDownloads++;
      const timeout = error instanceof UpstreamTimeout || controller.signal.aborted;
      const message = error instanceof Error ? error.message : String(error);
      log.warn("download failed; partial body removed", { path: key, error: message });
      return {
        kind: "error",
        status: timeout ? 504 : 502,
        message: timeout
          ? `${key}: no complete answer from upstream within ${timeoutMs} ms`
          : message,
      };
    } finally {
      clearTimeout(timer);
      if (!streamed) feed(sink, null);
    }
  }
}

/** Gives a parser a chunk (`null`: the end); a parser error must not fail the body. */
function feed(sink: BodySink | undefined, chunk: Uint8Array | null) {
  try {
    if (chunk) sink?.write(chunk);
    else sink?.end();
  } catch { /* ignored */ }
}

/** Writes all of `data`; with `sync`, without the thread pool (a cache on a tmpfs). */
async function writeAll(file: Deno.FsFile, data: Uint8Array, sync: boolean) {
  for (let at = 0; at < data.byteLength;) {
    at += sync ? file.writeSync(data.subarray(at)) : await file.write(data.subarray(at));
  }
}

async function readBounded(
  body: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.byteLength > limit) {
      throw new UpstreamError(`an error body larger than ${limit} bytes`);
    }
    parts.push(chunk);
    size += chunk.byteLength;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
