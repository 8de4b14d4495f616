/**
 * The proxy's counters, read by the stats endpoint (`GET /_flowsched/stats`).
 *
 * @module
 */

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
  /** Body bytes sent to clients. */
  bytesServed = 0;
  /** Body bytes received from upstream. */
  bytesFetched = 0;
  /** Answers 502 (upstream failed) and 504 (timed out). */
  badGateway = 0;
  gatewayTimeout = 0;
  /** Upstream downloads whose body failed or was cut short (their .tmp was removed). */
  failedDownloads = 0;
}

/** The JSON the stats endpoint returns. */
export interface StatsSnapshot {
  hits: number;
  misses: number;
  coalesced: number;
  sharedWaits: number;
  prefetched: number;
  prefetchHits: number;
  bypassed: number;
  evictions: number;
  failedDownloads: number;
  bytes: { served: number; fetched: number; cached: number; cacheLimit: number };
  cacheEntries: number;
  errors: { badGateway: number; gatewayTimeout: number };
  upstream: UpstreamInfo;
}

/** What the upstream reports about itself. */
export interface UpstreamInfo {
  url: string;
  state: "connecting" | "up" | "down" | "closed";
  streams: number;
  connects: number;
  disconnects: number;
  inFlight: number;
  lastError?: string;
}
