/**
 * The TCP-to-SCTP proxy: HTTP/1.1 clients (browsers, curl, wrk) on one side
 * (`Deno.serve`), one association with N streams to the flowsched server on
 * the other, a shared disk cache and an HTML prefetcher in between.
 *
 * - A hit is answered from the cache at once.
 * - A miss is downloaded into the cache (concurrent misses share one upstream
 *   request) and then served from it; a failed download gives 502, a slow
 *   one 504, and is never served in part.
 * - Requests with a query string, and paths the cache cannot hold safely,
 *   are passed through uncached.
 * - `GET /_flowsched/stats` answers the counters as JSON.
 *
 * @example
 * ```ts
 * const proxy = await startProxy({ listen: "127.0.0.1:8080", upstream: "usrsctp://127.0.0.1:9000" });
 * console.log(proxy.stats());
 * await proxy.close();
 * ```
 *
 * @module
 */

import { createLogger, type Logger, type LogLevel } from "../cli/log.ts";
import { cacheKey, type CacheView, DiskCache, type OpenEntry } from "./cache.ts";
import { Fetcher, type Inspector } from "./fetcher.ts";
import { Prefetcher } from "./prefetch.ts";
import { ProxyStats, type StatsSnapshot } from "./stats.ts";
import { Upstream, UpstreamTimeout } from "./upstream.ts";

/** The path of the stats endpoint. */
export const STATS_PATH = "/_flowsched/stats";

/** Proxy options; every field has a default. */
export interface ProxyOptions {
  /** `host:port` for HTTP/1.1 over TCP (port 0: any free port). @default "127.0.0.1:8080" */
  listen?: string;
  /** The server, `<transport>://host:port`. @default "usrsctp://127.0.0.1:9000" */
  upstream?: string;
  /** Streams of the upstream association. @default 8 */
  streams?: number;
  /** usrsctp: the server's UDP encapsulation port. @default 9899 */
  udpPort?: number;
  /** Cache directory, shareable between proxies. @default "/dev/shm/flowsched-cache" */
  cache?: string;
  /** Cache size limit in body bytes. @default 268435456 */
  cacheSize?: number;
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
  /** Stops listening, drops the association, stops watching the cache. */
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

/** Starts a proxy and returns once it listens and the cache is open. */
export async function startProxy(options: ProxyOptions = {}): Promise<FlowProxy> {
  const log = createLogger(options.logLevel ?? "info", "proxy");
  const stats = new ProxyStats();
  const timeoutMs = options.requestTimeout ?? 30000;
  const { hostname, port } = parseListen(options.listen ?? "127.0.0.1:8080");
  const cache = await DiskCache.open({
    dir: options.cache ?? "/dev/shm/flowsched-cache",
    maxBytes: options.cacheSize ?? 256 * 1024 * 1024,
    log,
    onEvict: () => stats.evictions++,
  });
  const upstream = new Upstream({
    url: options.upstream ?? "usrsctp://127.0.0.1:9000",
    streams: options.streams,
    udpPort: options.udpPort,
    connectTimeoutMs: options.connectTimeout,
    stallTimeoutMs: options.stallTimeout,
    probeTimeoutMs: options.probeTimeout,
    log,
  });
  const prefetcher = options.prefetch === false
    ? undefined
    : new Prefetcher({ stats, log, cached: (key) => cache.knows(key) });
  const inspector: Inspector | undefined = prefetcher &&
    ((path, type, depth) => prefetcher.inspect(path, type, depth));
  const fetcher = new Fetcher({
    cache,
    upstream,
    stats,
    log,
    timeoutMs,
    inspector,
  });
  prefetcher?.attach(fetcher);
  upstream.start();

  const snapshot = (): StatsSnapshot => ({
    hits: stats.hits,
    misses: stats.misses,
    coalesced: stats.coalesced,
    sharedWaits: stats.sharedWaits,
    prefetched: stats.prefetched,
    prefetchHits: stats.prefetchHits,
    bypassed: stats.bypassed,
    evictions: stats.evictions,
    failedDownloads: stats.failedDownloads,
    bytes: {
      served: stats.bytesServed,
      fetched: stats.bytesFetched,
      cached: cache.bytes,
      cacheLimit: cache.maxBytes,
    },
    cacheEntries: cache.entries,
    errors: { badGateway: stats.badGateway, gatewayTimeout: stats.gatewayTimeout },
    upstream: upstream.info(),
  });

  const handler = new RequestHandler({
    cache,
    fetcher,
    upstream,
    stats,
    log,
    timeoutMs,
    snapshot,
    inspector,
  });
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname,
    port,
    onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
    onError: (error) => {
      log.error("handler failed", { error: (error as Error).message });
      return textResponse(500, "the proxy could not answer this request");
    },
  }, (request) => handler.handle(request));
  const addr = await listening.promise;
  log.info("listening", {
    listen: `${addr.hostname}:${addr.port}`,
    upstream: upstream.url,
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
        await server.shutdown();
        await upstream.close();
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
  cache: DiskCache;
  fetcher: Fetcher;
  upstream: Upstream;
  stats: ProxyStats;
  log: Logger;
  timeoutMs: number;
  snapshot: () => StatsSnapshot;
  inspector?: Inspector;
}

class RequestHandler {
  readonly #c: HandlerContext;

  constructor(context: HandlerContext) {
    this.#c = context;
  }

  async handle(request: Request): Promise<Response> {
    const started = performance.now();
    const response = await this.#handle(request);
    this.#c.log.debug("request", {
      method: request.method,
      url: request.url,
      status: response.status,
      cache: response.headers.get("x-flowsched-cache") ?? undefined,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
    return response;
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === STATS_PATH) {
      return Response.json(this.#c.snapshot(), { headers: { "cache-control": "no-store" } });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return textResponse(405, `method ${request.method} is not allowed`, { Allow: "GET, HEAD" });
    }
    const key = url.search ? null : cacheKey(url.pathname);
    if (!key) return await this.#passThrough(url.pathname + url.search, request);
    for (let attempt = 0; attempt < 2; attempt++) {
      const entry = await this.#c.cache.open(key);
      if (entry) {
        this.#c.stats.hits++;
        const prefetched = this.#c.fetcher.takePrefetched(key);
        if (prefetched) this.#c.stats.prefetchHits++;
        this.#reinspect(url.pathname, entry);
        return this.#serve(entry, prefetched ? "prefetched" : "hit", request.method);
      }
      const fill = await this.#c.fetcher.fill(key, url.pathname);
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
          this.#c.stats.bytesServed += result.body.byteLength;
          return new Response(result.body, {
            status: result.status,
            headers: forwardHeaders(result.headers, "miss"),
          });
        case "uncacheable":
          return await this.#passThrough(url.pathname, request);
        case "error":
          return this.#gatewayError(result.status, result.message);
      }
    }
    return this.#gatewayError(502, `${url.pathname}: the cache entry vanished twice`);
  }

  /**
   * A cached page is parsed again (bodies read into memory only), so
   * resources evicted since it was stored are prefetched anew; cached ones
   * are skipped without I/O.
   */
  #reinspect(path: string, entry: OpenEntry) {
    if (!(entry.body instanceof Uint8Array) || !this.#c.inspector) return;
    const type = new Headers(entry.meta.headers).get("content-type") ?? "";
    if (!type.startsWith("text/html")) return;
    const sink = this.#c.inspector(path, type, 0);
    try {
      sink?.write(entry.body);
      sink?.end();
    } catch { /* a parser error must not fail the answer */ }
  }

  #serve(entry: OpenEntry, how: string, method: string): Response {
    const headers = forwardHeaders(new Headers(entry.meta.headers), how);
    headers.set("content-length", String(entry.size));
    if (method === "HEAD") {
      // Unpins the entry at once: nobody will read this body.
      if (entry.body instanceof ReadableStream) entry.body.cancel().catch(() => {});
      return new Response(null, { status: 200, headers });
    }
    this.#c.stats.bytesServed += entry.size;
    return new Response(entry.body as BodyInit, { status: 200, headers });
  }

  async #passThrough(target: string, request: Request): Promise<Response> {
    this.#c.stats.bypassed++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#c.timeoutMs);
    try {
      const response = await this.#c.upstream.request(target, {
        method: request.method === "HEAD" ? "HEAD" : "GET",
        signal: controller.signal,
      });
      const stats = this.#c.stats;
      const counted = response.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, out) {
            stats.bytesServed += chunk.byteLength;
            out.enqueue(chunk);
          },
          flush: () => clearTimeout(timer),
        }),
      );
      return new Response(request.method === "HEAD" ? null : counted, {
        status: response.status,
        headers: forwardHeaders(response.headers, "bypass"),
      });
    } catch (error) {
      clearTimeout(timer);
      const message = (error as Error).message;
      return this.#gatewayError(error instanceof UpstreamTimeout ? 504 : 502, message);
    }
  }

  #gatewayError(status: 502 | 504, message: string): Response {
    if (status === 502) this.#c.stats.badGateway++;
    else this.#c.stats.gatewayTimeout++;
    this.#c.log.warn(status === 502 ? "bad gateway" : "gateway timeout", { status, message });
    return textResponse(status, message);
  }
}

function forwardHeaders(from: Headers, how: string): Headers {
  const headers = new Headers();
  for (const [name, value] of from) if (!HOP_BY_HOP.has(name)) headers.set(name, value);
  headers.set("x-flowsched-cache", how);
  return headers;
}

function textResponse(status: number, message: string, extra: Record<string, string> = {}) {
  const reason = status === 502
    ? "Bad Gateway"
    : status === 504
    ? "Gateway Timeout"
    : status === 405
    ? "Method Not Allowed"
    : "Error";
  return new Response(`${status} ${reason}: ${message}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...extra },
  });
}
