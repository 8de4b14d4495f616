/**
 * The proxy's counters, read by the stats endpoint (`GET /_flowsched/stats`).
 *
 * @module
 */

/** The path of the stats endpoint. */
export const STATS_PATH = "/_flowsched/stats";

/** Who may read the stats endpoint: loopback clients, anyone, nobody. */
export const STATS_ACCESS = ["loopback", "public", "off"] as const;

/** Counters of one proxy process. Plain fields: the proxy increments them. */
export class ProxyStats {
  /** Client requests answered from a complete cache entry. */
  hits = 0;
  /** Client requests that found no entry and started (or joined a cross-process) download. */
  misses = 0;
  /** Client requests that joined a download already in flight in this process. */
  coalesced = 0;
  /** Misses that waited for another proxy process's download (its `.tmp`) to complete. */
  sharedWaits = 0;
  /** Upstream downloads started by the prefetcher. */
  prefetched = 0;
  /** Client requests served by an entry the prefetcher fetched (hit or joined in flight). */
  prefetchHits = 0;
  /** Client requests passed through without the cache (query strings, unsafe paths). */
  bypassed = 0;
  /** Entries evicted by this process. */
  evictions = 0;
  /** 200 answers handed on as they arrived, not stored: larger than the cache, or no room. */
  notStored = 0;
  /** Body bytes sent to clients. */
  bytesServed = 0;
  /** Body bytes received from upstream. */
  bytesFetched = 0;
  /** Answers 502 (upstream failed). */
  badGateway = 0;
  /** Answers 504 (timed out). */
  gatewayTimeout = 0;
  /** Upstream downloads whose body failed or was cut short (their .tmp was removed). */
  failedDownloads = 0;
}

/** The JSON the stats endpoint returns. */
export interface StatsSnapshot {
  /** Client requests answered from a complete cache entry. */
  hits: number;
  /** Client requests that found no entry and started (or joined a cross-process) download. */
  misses: number;
  /** Client requests that joined a download already in flight in this process. */
  coalesced: number;
  /** Misses that waited for another proxy process's download to complete. */
  sharedWaits: number;
  /** Upstream downloads started by the prefetcher. */
  prefetched: number;
  /** Client requests served by an entry the prefetcher fetched. */
  prefetchHits: number;
  /** Client requests passed through without the cache (query strings, unsafe paths). */
  bypassed: number;
  /** Entries evicted by this process. */
  evictions: number;
  /** 200 answers handed on as they arrived, not stored: larger than the cache, or no room. */
  notStored: number;
  /** Upstream downloads whose body failed or was cut short. */
  failedDownloads: number;
  /**
   * Body bytes sent to clients, received from upstream, held by the entries
   * this process knows, and the cache's size limit.
   */
  bytes: { served: number; fetched: number; cached: number; cacheLimit: number };
  /** Cache entries this process knows. */
  cacheEntries: number;
  /** Small bodies this process keeps in memory: their bytes and how many. */
  memory: { bytes: number; entries: number };
  /** Answers 502 (upstream failed) and 504 (timed out). */
  errors: { badGateway: number; gatewayTimeout: number };
  /**
   * The first of `upstreams`: the only one unless the proxy was given
   * several (kept for readers from before there could be several).
   */
  upstream: UpstreamInfo;
  /** Every upstream server, in the order given. */
  upstreams: UpstreamInfo[];
  /**
   * Requests sent to another server than their path's because it held more
   * than its bound (`--hash-balance-factor`); 0 without one.
   */
  rebalanced: number;
}

/** What an upstream reports about itself. */
export interface UpstreamInfo {
  /** The server, `<transport>://host:port`. */
  url: string;
  /** `connecting` until the first association is up; `down` while reconnecting. */
  state: "connecting" | "up" | "down" | "closed";
  /** Streams of the association (asked for, while there is none). */
  streams: number;
  /** Associations established so far. */
  connects: number;
  /** Associations lost so far. */
  disconnects: number;
  /** Requests sent upstream whose response has not ended. */
  inFlight: number;
  /** Requests sent upstream so far (the watchdog's probes not counted). */
  requests: number;
  /** Why the last connect attempt or association failed, until the next one is up. */
  lastError?: string;
}
