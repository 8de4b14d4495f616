/**
 * The TCP-to-SCTP proxy: HTTP/1.1 clients (browsers, curl, wrk) on one side
 * (`http_front.ts`), one association with N streams to the flowsched server on
 * the other (or one to each of several servers of the site, requests shared
 * out by path: see `upstreams.ts`), a shared disk cache and an HTML
 * prefetcher in between.
 *
 * - A hit is answered from the cache at once.
 * - A miss is downloaded into the cache (concurrent misses share one upstream
 *   request) and then served from it; a failed download gives 502, a slow
 *   one 504, and is never served in part. A body the cache has no room for
 *   is handed on as it arrives, not stored.
 * - Requests with a query string, HEAD requests for entries not in the cache,
 *   and paths the cache does not store are passed through uncached.
 * - Errors are answered with plain status texts; what went wrong (upstream
 *   address, errno texts, cache paths) goes to the log only.
 * - `GET /_flowsched/stats` answers the counters as JSON, to loopback clients
 *   unless `statsAccess` says otherwise.
 *
 * @example
 * ```ts
 * const proxy = await startProxy({ listen: "127.0.0.1:8080", upstream: "usrsctp://127.0.0.1:9000" });
 * console.log(proxy.stats());
 * await proxy.close();
 *
 * // Three servers of one site: each path goes to one of them.
 * const spread = await startProxy({
 *   listen: "127.0.0.1:8081",
 *   upstream: ["tcpmux://10.0.0.2:9000", "tcpmux://10.0.0.3:9000", "tcpmux://10.0.0.4:9000"],
 * });
 * console.log(spread.stats().upstreams.map((u) => u.requests));
 * await spread.close();
 * ```
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { createLogger, type Logger, type LogLevel } from "../cli/log.ts";
import { cacheKey, type CacheView, DiskCache, type EntryMeta, type OpenEntry } from "./cache.ts";
import { Fetcher, type Inspector } from "./fetcher.ts";
import { guardBody } from "./guard.ts";
import {
  type ClientInfo,
  type FrontHandler,
  type QuickAnswer,
  serveHttp,
  statusResponse,
} from "./http_front.ts";
import { Prefetcher } from "./prefetch.ts";
import { ProxyStats, STATS_PATH, type StatsSnapshot } from "./stats.ts";
import { UpstreamTimeout } from "./upstream.ts";
import { UpstreamSet } from "./upstreams.ts";
import type { DataPath } from "../transport/types.ts";

/** Longest request target (path and query) passed on; longer ones get 414. */
const MAX_TARGET = 8192;
/**
 * Passed-through bodies up to this size are read whole and answered from one
 * array: for small bodies the streams between the association and the client
 * cost more than the bytes.
 */
const SMALL_PASS_THROUGH = 64 * 1024;
/** A cached page is parsed for its resources at most this often (ms). */
const REINSPECT_MS = 1000;

/** Proxy options; every field has a default. */
export interface ProxyOptions {
  /** `host:port` for HTTP/1.1 over TCP (port 0: any free port). @default "127.0.0.1:8080" */
  listen?: string;
  /**
   * Listen with SO_REUSEPORT, beside other proxies on the same port (Linux
   * spreads the connections over them; see `startProxyThreads`). @default false
   */
  reusePort?: boolean;
  /**
   * The server, `<transport>://host:port`, or several servers of the same
   * site: each request then goes to one of them by its path (see
   * `UpstreamSet`). Two URLs naming the same server are refused.
   * @default "usrsctp://127.0.0.1:9000"
   */
  upstream?: string | readonly string[];
  /**
   * Several upstreams: 0, each path always to its own server; N ≥ 100, no
   * server holds more than N% of the mean requests in flight (see
   * `UpstreamSetOptions.balanceFactor`). @default 0
   */
  hashBalanceFactor?: number;
  /** Streams of each upstream association. @default 8 */
  streams?: number;
  /** usrsctp: the server's UDP encapsulation port. @default 9899 */
  udpPort?: number;
  /** Where the upstream association moves its messages (see `AssociationOptions.dataPath`). @default "event-loop" */
  dataPath?: DataPath;
  /** SCTP upstreams: see `AssociationOptions.sackFrequency`. @default 0 */
  sackFrequency?: number;
  /** SCTP upstreams: see `AssociationOptions.sackDelay`. @default 0 */
  sackDelay?: number;
  /** Cache directory, shareable between proxies. @default "/dev/shm/flowsched-cache" */
  cache?: string;
  /**
   * Cache size limit in body bytes; 0 turns the cache off (every request is
   * passed through without touching the disk, and nothing is prefetched).
   * @default 268435456
   */
  cacheSize?: number;
  /**
   * Memory for copies of small cached bodies (up to 256 KiB): a repeated hit
   * then touches no file. 0 keeps none. @default 33554432
   */
  memoryCache?: number;
  /** Prefetch the embedded resources of HTML pages. @default true */
  prefetch?: boolean;
  /** ms before a client gets 504. @default 30000 */
  requestTimeout?: number;
  /** ms a request waits for the association before 502. @default 3000 */
  connectTimeout?: number;
  /** ms of upstream silence (requests in flight) before a probe. @default 250 */
  stallTimeout?: number;
  /** ms a probe request may take before the server counts as hung. @default 10000 */
  probeTimeout?: number;
  /** Entries below this level are not logged (`silent`: none are). @default "info" */
  logLevel?: LogLevel;
  /**
   * Who may read `GET /_flowsched/stats` (it names the upstreams and their
   * last errors): loopback clients, anyone, or nobody.
   * @default "loopback"
   */
  statsAccess?: "loopback" | "public" | "off";
}

/** A running proxy. */
export interface FlowProxy extends AsyncDisposable {
  /** The bound TCP port. */
  readonly port: number;
  /** The bound address. */
  readonly hostname: string;
  /** The cache (its real directory, bytes, entries). */
  readonly cache: CacheView;
  /** The counters, as the stats endpoint returns them. */
  stats(): StatsSnapshot;
  /** Stops listening, drops the associations, stops watching the cache. */
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-connection",
]);

/** Splits `host:port` (IPv6 in brackets). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new TypeError(`listen address "${listen}" is not host:port, e.g. 127.0.0.1:8080`);
  }
  return { hostname: match[1] ?? (match[2] || "0.0.0.0"), port };
}

/**
 * The IP address to listen on for `hostname`: itself if it is one (or
 * `localhost`), else the system's first address for the name (getaddrinfo:
 * the hosts file, then DNS).
 */
async function listenAddress(hostname: string): Promise<string> {
  if (isIP(hostname) !== 0 || hostname === "localhost") return hostname;
  try {
    return (await lookup(hostname)).address;
  } catch (error) {
    throw new TypeError(
      `listen host "${hostname}" has no address (${
        (error as Error).message
      }); give an IP address, e.g. 127.0.0.1`,
    );
  }
}

/** Starts a proxy and returns once it listens and the cache is open. */
export async function startProxy(options: ProxyOptions = {}): Promise<FlowProxy> {
  const log = createLogger(options.logLevel ?? "info", "proxy");
  const stats = new ProxyStats();
  const timeoutMs = options.requestTimeout ?? 30000;
  const { hostname, port } = parseListen(options.listen ?? "127.0.0.1:8080");
  const upstreams = new UpstreamSet({
    urls: [options.upstream ?? "usrsctp://127.0.0.1:9000"].flat(),
    balanceFactor: options.hashBalanceFactor,
    streams: options.streams,
    udpPort: options.udpPort,
    dataPath: options.dataPath,
    sackFrequency: options.sackFrequency,
    sackDelay: options.sackDelay,
    connectTimeoutMs: options.connectTimeout,
    stallTimeoutMs: options.stallTimeout,
    probeTimeoutMs: options.probeTimeout,
    log,
  });
  const cache = await DiskCache.open({
    dir: options.cache ?? "/dev/shm/flowsched-cache",
    maxBytes: options.cacheSize ?? 256 * 1024 * 1024,
    memoryBytes: options.memoryCache,
    log,
    onEvict: () => stats.evictions++,
  });
  // Without a cache there is nowhere to prefetch into.
  const prefetcher = options.prefetch === false || cache.maxBytes === 0
    ? undefined
    : new Prefetcher({ stats, log, cached: (key) => cache.knows(key) });
  const inspector: Inspector | undefined = prefetcher &&
    ((path, type, depth) => prefetcher.inspect(path, type, depth));
  const fetcher = new Fetcher({
    cache,
    upstreams,
    stats,
    log,
    timeoutMs,
    inspector,
  });
  prefetcher?.attach(fetcher);
  upstreams.start();

  const snapshot = (): StatsSnapshot => {
    const info = upstreams.info();
    return {
      hits: stats.hits,
      misses: stats.misses,
      coalesced: stats.coalesced,
      sharedWaits: stats.sharedWaits,
      prefetched: stats.prefetched,
      prefetchHits: stats.prefetchHits,
      bypassed: stats.bypassed,
      evictions: stats.evictions,
      notStored: stats.notStored,
      failedDownloads: stats.failedDownloads,
      bytes: {
        served: stats.bytesServed,
        fetched: stats.bytesFetched,
        cached: cache.bytes,
        cacheLimit: cache.maxBytes,
      },
      cacheEntries: cache.entries,
      memory: cache.memory,
      errors: { badGateway: stats.badGateway, gatewayTimeout: stats.gatewayTimeout },
      upstream: info[0],
      upstreams: info,
      rebalanced: upstreams.rebalanced,
    };
  };

  const handler = new RequestHandler({
    logRequests: (options.logLevel ?? "info") === "debug",
    cache,
    fetcher,
    upstreams,
    stats,
    log,
    timeoutMs,
    snapshot,
    inspector,
    statsAccess: options.statsAccess ?? "loopback",
  });
  const front = serveHttp({
    hostname: await listenAddress(hostname),
    port,
    reusePort: options.reusePort ?? false,
  }, handler);
  const addr = front.addr;
  log.info("listening", {
    listen: `${addr.hostname}:${addr.port}`,
    ...(upstreams.urls.length === 1
      ? { upstream: upstreams.urls[0] }
      : { upstreams: upstreams.urls }),
    cache: cache.dir,
    cacheSize: cache.maxBytes,
    prefetch: prefetcher !== undefined,
  });

  let closing: Promise<void> | undefined;
  const proxy: FlowProxy = {
    port: addr.port,
    hostname: addr.hostname,
    cache,
    stats: snapshot,
    close() {
      closing ??= (async () => {
        await front.shutdown();
        await upstreams.close();
        await cache.close();
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return proxy.close();
    },
  };
  return proxy;
}

interface HandlerContext {
  /** Whether each request is logged (at debug level). */
  logRequests: boolean;
  cache: DiskCache;
  fetcher: Fetcher;
  upstreams: UpstreamSet;
  stats: ProxyStats;
  log: Logger;
  timeoutMs: number;
  snapshot: () => StatsSnapshot;
  inspector?: Inspector;
  statsAccess: "loopback" | "public" | "off";
}

/** A response's header list. */
type HeaderList = [string, string][];

/** What the handler works out once per cache entry (per metadata object). */
interface KnownEntry {
  /** Its content type. */
  type: string;
  /** When its body was last parsed for resources (`performance.now()`). */
  inspectedAt: number;
  /** Its response headers, by the value of `x-flowsched-cache`. */
  headers: Map<string, HeaderList>;
  /** Its encoded status line and headers for a quick answer, by the same. */
  heads: Map<string, Uint8Array>;
}

/** A cache hit's answer, and how the cache answered (the `x-flowsched-cache` value). */
interface CachedAnswer extends QuickAnswer {
  readonly how: string;
}

const encoder = new TextEncoder();
const NO_BODY = new Uint8Array(0);

class RequestHandler implements FrontHandler {
  readonly #c: HandlerContext;
  readonly #entries = new WeakMap<EntryMeta, KnownEntry>();

  constructor(context: HandlerContext) {
    this.#c = context;
  }

  /**
   * A hit on a body kept in memory: everything `#handle` does for it, without
   * waiting and without a `Request` or `Response` (the hot path of a hit).
   */
  quick(method: string, url: URL): QuickAnswer | undefined {
    if (this.#c.logRequests || (method !== "GET" && method !== "HEAD") || url.search) return;
    if (url.pathname.length > MAX_TARGET || url.pathname === STATS_PATH) return;
    const key = cacheKey(url.pathname);
    const entry = key ? this.#c.cache.kept(key) : undefined;
    if (!key || !entry) return;
    this.#c.stats.hits++;
    const prefetched = this.#c.fetcher.takePrefetched(key);
    if (prefetched) this.#c.stats.prefetchHits++;
    this.#reinspect(key, entry);
    return this.#serve(entry, prefetched ? "prefetched" : "hit", method);
  }

  failed(what: "handler" | "head" | "body" | "accept", error: unknown): void {
    const reason = String(error);
    if (what === "handler") this.#c.log.error("handler failed", { error: reason });
    else if (what === "accept") this.#c.log.warn("accept failed", { error: reason });
    else if (what === "body") this.#c.log.debug("answer cut: its body broke off", { reason });
    else this.#c.log.debug("request head refused", { reason });
  }

  async handle(request: Request, client: ClientInfo): Promise<Response | QuickAnswer> {
    if (!this.#c.logRequests) return await this.#handle(request, client);
    const started = performance.now();
    const answer = await this.#handle(request, client);
    const response = answer instanceof Response;
    this.#c.log.debug("request", {
      method: request.method,
      url: request.url,
      status: response ? answer.status : 200,
      cache: response ? answer.headers.get("x-flowsched-cache") ?? undefined : answer.how,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
    return answer;
  }

  async #handle(request: Request, client: ClientInfo): Promise<Response | CachedAnswer> {
    const url = new URL(request.url);
    if (url.pathname === STATS_PATH) return this.#stats(client.remoteAddr);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return statusResponse(405, { Allow: "GET, HEAD" });
    }
    if (url.pathname.length + url.search.length > MAX_TARGET) {
      this.#c.log.info("request target too long; answered 414", {
        length: url.pathname.length + url.search.length,
        limit: MAX_TARGET,
      });
      return statusResponse(414);
    }
    const key = url.search ? null : cacheKey(url.pathname);
    if (!key) return await this.#passThrough(url.pathname + url.search, request);
    if (this.#c.cache.maxBytes === 0) return await this.#passThrough(key, request);
    for (let attempt = 0; attempt < 2; attempt++) {
      const entry = await this.#c.cache.open(key);
      if (entry) {
        this.#c.stats.hits++;
        const prefetched = this.#c.fetcher.takePrefetched(key);
        if (prefetched) this.#c.stats.prefetchHits++;
        this.#reinspect(key, entry);
        return this.#serve(entry, prefetched ? "prefetched" : "hit", request.method);
      }
      // Only the head is wanted: downloading the body for it would cost the whole
      // transfer on the association, and a HEAD says nothing about a later GET.
      if (request.method === "HEAD") return await this.#passThrough(key, request);
      const fill = await this.#c.fetcher.fill(key);
      if (fill.joined) this.#c.stats.coalesced++;
      else this.#c.stats.misses++;
      if (fill.prefetched) this.#c.stats.prefetchHits++;
      const result = fill.result;
      switch (result.kind) {
        case "cached": {
          const stored = await this.#c.cache.open(key);
          if (stored) {
            const how = fill.prefetched
              ? "prefetched"
              : fill.joined
              ? "coalesced"
              : result.shared
              ? "shared"
              : "miss";
            return this.#serve(stored, how, request.method);
          }
          continue; // evicted by another process meanwhile: once more
        }
        case "response":
          this.#noteStatus(key, result.status);
          this.#c.stats.bytesServed += result.body.byteLength;
          return new Response(result.body, {
            status: result.status,
            headers: forwardHeaders(result.headers, "miss"),
          });
        case "stream":
          return new Response(this.#counted(result.body), {
            status: 200,
            headers: forwardHeaders(result.headers, "bypass"),
          });
        case "uncacheable":
          return await this.#passThrough(key, request);
        case "error":
          return this.#gatewayError(result.status, key, result.message);
      }
    }
    // Evicted twice between download and reading: hand it on without the cache.
    return await this.#passThrough(key, request);
  }

  #stats(client: Deno.Addr): Response {
    const access = this.#c.statsAccess;
    if (access === "public" || (access === "loopback" && isLoopback(client))) {
      const json = encoder.encode(JSON.stringify(this.#c.snapshot()));
      return new Response(json, {
        headers: {
          "content-type": "application/json",
          "content-length": String(json.byteLength),
          "cache-control": "no-store",
        },
      });
    }
    return statusResponse(403);
  }

  /** Upstream errors are passed on as they are; the log names them. */
  #noteStatus(path: string, status: number) {
    if (status >= 500) this.#c.log.warn("upstream answered an error", { path, status });
  }

  #counted(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const stats = this.#c.stats;
    return body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          stats.bytesServed += chunk.byteLength;
          out.enqueue(chunk);
        },
      }),
    );
  }

  /**
   * A cached page is parsed again (bodies read into memory only), at most
   * once a second, so resources evicted since it was stored are prefetched
   * anew; cached ones are skipped without I/O.
   */
  #reinspect(path: string, entry: OpenEntry) {
    if (entry.mapped || !this.#c.inspector) return;
    const known = this.#known(entry.meta);
    if (!known.type.startsWith("text/html")) return;
    if (performance.now() - known.inspectedAt < REINSPECT_MS) return;
    known.inspectedAt = performance.now();
    const sink = this.#c.inspector(path, known.type, 0);
    try {
      sink?.write(entry.body);
      sink?.end();
    } catch { /* a parser error must not fail the answer */ }
  }

  /**
   * Answers from an open entry: its head (made once per entry and `how`) and
   * its body as it is, in memory or the file's mapping, which the front hands
   * to the socket; the entry stays pinned until the answer has been written
   * or dropped.
   */
  #serve(entry: OpenEntry, how: string, method: string): CachedAnswer {
    let head: Uint8Array;
    try {
      head = this.#entryHead(entry, how);
    } catch (error) {
      entry.release();
      throw error;
    }
    if (method === "HEAD") {
      entry.release();
      return { how, head, body: NO_BODY };
    }
    this.#c.stats.bytesServed += entry.size;
    if (!entry.mapped) return { how, head, body: entry.body };
    return { how, head, body: entry.body, mapped: true, done: entry.release };
  }

  /** The status line and headers of a hit on `entry`, encoded once per entry and `how`. */
  #entryHead(entry: OpenEntry, how: string): Uint8Array {
    const known = this.#known(entry.meta);
    let head = known.heads.get(how);
    if (!head) {
      const lines = this.#entryHeaders(entry, how).map(([name, value]) => `${name}: ${value}\r\n`);
      head = encoder.encode(`HTTP/1.1 200 OK\r\n${lines.join("")}`);
      known.heads.set(how, head);
    }
    return head;
  }

  #entryHeaders(entry: OpenEntry, how: string): HeaderList {
    const { headers } = this.#known(entry.meta);
    let list = headers.get(how);
    if (!list) {
      const forwarded = forwardHeaders(new Headers(entry.meta.headers), how);
      forwarded.set("content-length", String(entry.size));
      headers.set(how, list = [...forwarded]);
    }
    return list;
  }

  /** What a hit needs to know of an entry's metadata, worked out once per entry. */
  #known(meta: EntryMeta): KnownEntry {
    let known = this.#entries.get(meta);
    if (!known) {
      const type = new Headers(meta.headers).get("content-type") ?? "";
      known = { type, inspectedAt: -Infinity, headers: new Map(), heads: new Map() };
      this.#entries.set(meta, known);
    }
    return known;
  }

  /**
   * Asks upstream without the cache. The answer's head must come within the
   * request timeout (else 504); after that its body is handed on as it
   * arrives and dropped if it does not move for as long.
   */
  async #passThrough(target: string, request: Request): Promise<Response> {
    this.#c.stats.bypassed++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#c.timeoutMs);
    const head = request.method === "HEAD";
    try {
      const response = await this.#c.upstreams.request(target, {
        method: head ? "HEAD" : "GET",
        signal: controller.signal,
      });
      clearTimeout(timer);
      this.#noteStatus(target, response.status);
      const headers = forwardHeaders(response.headers, "bypass");
      if (head) {
        await response.body.cancel();
        return new Response(null, { status: response.status, headers });
      }
      if (Number(response.headers.get("content-length")) <= SMALL_PASS_THROUGH) {
        // Read whole, under the request's timer: no stream between association and client.
        const timer = setTimeout(() => controller.abort(), this.#c.timeoutMs);
        const body = await response.bytes().finally(() => clearTimeout(timer));
        this.#c.stats.bytesServed += body.byteLength;
        return new Response(body, { status: response.status, headers });
      }
      const body = guardBody(response.body, {
        idleMs: this.#c.timeoutMs,
        abort: () => controller.abort(),
      });
      return new Response(this.#counted(body), { status: response.status, headers });
    } catch (error) {
      clearTimeout(timer);
      return this.#gatewayError(error instanceof UpstreamTimeout ? 504 : 502, target, error);
    }
  }

  #gatewayError(status: 502 | 504, path: string, error: unknown): Response {
    if (status === 502) this.#c.stats.badGateway++;
    else this.#c.stats.gatewayTimeout++;
    this.#c.log.warn(status === 502 ? "bad gateway" : "gateway timeout", {
      status,
      path,
      error: error instanceof Error ? error.message : String(error),
    });
    return statusResponse(status);
  }
}

/** Whether a client address is a loopback one (127.0.0.0/8, ::1, or IPv4-mapped 127.x). */
function isLoopback(addr: Deno.Addr): boolean {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return false;
  const host = addr.hostname.toLowerCase();
  return host === "::1" || /^(?:::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

function forwardHeaders(from: Headers, how: string): Headers {
  const headers = new Headers();
  for (const [name, value] of from) if (!HOP_BY_HOP.has(name)) headers.set(name, value);
  headers.set("x-flowsched-cache", how);
  return headers;
}
