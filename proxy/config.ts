/**
 * The proxy's options: one table for flags, the config file and `--help`.
 *
 * @module
 */

import type { OptionTable } from "../cli/options.ts";
import { LOG_LEVELS } from "../cli/log.ts";
import { STATS_ACCESS, STATS_PATH } from "./stats.ts";
import { DATA_PATHS } from "../transport/types.ts";

/** Proxy option table. */
export const PROXY_OPTIONS = {
  listen: {
    kind: "string",
    default: "127.0.0.1:8080",
    help: "host:port to accept HTTP/1.1 over TCP on (port 0: any free port)",
    short: "l",
  },
  upstream: {
    kind: "strings",
    default: ["usrsctp://127.0.0.1:9000"],
    help: "a flowsched server, <transport>://host:port; ?udp=PORT runs kernel SCTP over UDP " +
      "to that port (through NATs that drop SCTP). With several servers of one site, each " +
      "path goes to one of them",
    short: "u",
  },
  hashBalanceFactor: {
    kind: "integer",
    default: 0,
    min: 0,
    help: "several upstreams: 0 sends each path to its own server always; N >= 100 bounds " +
      "each server's requests in flight to N% of the mean, sending a path to its next server " +
      "while its own is over that (consistent hashing with bounded loads, as HAProxy's " +
      "hash-balance-factor)",
  },
  streams: {
    kind: "integer",
    default: 8,
    min: 1,
    max: 1024,
    help: "streams of each upstream association",
  },
  udpPort: {
    kind: "integer",
    default: 9899,
    min: 0,
    max: 65535,
    help: "usrsctp: the server's UDP encapsulation port (RFC 6951; the url's ?udp=PORT wins)",
  },
  sackFrequency: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 65535,
    help: "SCTP upstreams: packets received before an acknowledgement is sent at once " +
      "(1: every packet; 0: the stack's own, 2)",
  },
  sackDelay: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 500,
    help: "SCTP upstreams: ms an acknowledgement may wait, at most 500 (0: the stack's own, 200)",
  },
  dataPath: {
    kind: "string",
    default: "event-loop",
    choices: DATA_PATHS,
    help:
      "move upstream messages on the event loop, or in two I/O Workers (the earlier path, for comparison)",
  },
  cache: {
    kind: "string",
    default: "/dev/shm/flowsched-cache",
    help: "cache directory (should be on a tmpfs; shared safely by several proxies)",
    short: "c",
  },
  cacheSize: {
    kind: "integer",
    default: 256 * 1024 * 1024,
    min: 0,
    help:
      "cache size limit in body bytes, entries being read included (least recently used ones are evicted; a body that does not fit is passed on, not stored); 0 turns the cache and prefetching off",
  },
  threads: {
    kind: "integer",
    default: 1,
    min: 1,
    max: 64,
    help:
      "proxies on this port, one per thread (SO_REUSEPORT), sharing the cache; each keeps its own upstream associations, so one client's connections may reach the server on several",
  },
  memoryCache: {
    kind: "integer",
    default: 32 * 1024 * 1024,
    min: 0,
    help:
      "bytes of memory for copies of small cached bodies (up to 256 KiB), so a repeated hit touches no file; 0 keeps none",
  },
  noPrefetch: {
    kind: "boolean",
    default: false,
    help: "do not prefetch the embedded resources of HTML pages",
  },
  requestTimeout: {
    kind: "integer",
    default: 30000,
    min: 1,
    help: "ms a client waits for a response before it gets 504",
  },
  connectTimeout: {
    kind: "integer",
    default: 3000,
    min: 1,
    help: "ms a request waits for the upstream association before it gets 502",
  },
  stallTimeout: {
    kind: "integer",
    default: 250,
    min: 10,
    help: "ms without upstream bytes (requests in flight) before the association is probed",
  },
  probeTimeout: {
    kind: "integer",
    default: 10000,
    min: 10,
    help: "ms a probe request may take before the server counts as hung (above SCTP RTO stalls)",
  },
  statsAccess: {
    kind: "string",
    default: "loopback",
    choices: STATS_ACCESS,
    help: `who may read GET ${STATS_PATH} (it names the upstreams and their last errors)`,
  },
  logLevel: { kind: "string", default: "info", choices: LOG_LEVELS, help: "log level" },
} as const satisfies OptionTable;
