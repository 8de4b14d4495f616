/**
 * The server's options: one table for flags, the config file and `--help`.
 *
 * @module
 */

import type { OptionTable } from "../cli/options.ts";
import { SERVER_TRANSPORTS } from "./transports.ts";
import { DATA_PATHS, STREAM_SCHEDULERS } from "../transport/types.ts";
import { POLICY_NAMES } from "./policies/mod.ts";
import { LOG_LEVELS } from "../cli/log.ts";

/** Server option table (defaults as in the thesis: one stream per CPU core). */
export const SERVER_OPTIONS = {
  transport: {
    kind: "string",
    default: "usrsctp",
    choices: SERVER_TRANSPORTS,
    help: "transport to listen on (tcp: plain HTTP/1.1 for curl, wrk and browsers)",
    short: "t",
  },
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: {
    kind: "integer",
    default: 9000,
    min: 0,
    max: 65535,
    help: "port to listen on (0: any free port)",
    short: "p",
  },
  root: { kind: "string", default: ".", help: "document root", short: "r" },
  policy: { kind: "string", default: "scf", choices: POLICY_NAMES, help: "scheduling policy" },
  streams: {
    kind: "integer",
    default: navigator.hardwareConcurrency,
    min: 1,
    max: 1024,
    help: "outgoing/incoming streams per association",
  },
  chunkSize: {
    kind: "integer",
    default: 65536,
    min: 512,
    max: 16 * 1024 * 1024,
    help: "largest body message in bytes",
  },
  runBytes: {
    kind: "integer",
    default: 128 * 1024,
    min: 512,
    help: "body bytes per run: the scheduler decides again after every run",
  },
  laneDepth: {
    kind: "integer",
    default: 2,
    min: 1,
    max: 65536,
    help: "runs queued per association beyond the scheduler's reach",
  },
  wireRuns: {
    kind: "integer",
    default: 0,
    min: 0,
    help: "runs in flight over all associations (0: no limit beyond lane depth)",
  },
  maxRunning: {
    kind: "integer",
    default: 0,
    min: 0,
    help: "responses in service at once, server-wide (admission control; 0: no limit)",
  },
  pace: {
    kind: "rate",
    default: "0",
    help: "emulated bottleneck, e.g. 10mbit: runs go out no faster (0: off)",
  },
  streamScheduler: {
    kind: "string",
    default: "fcfs",
    choices: STREAM_SCHEDULERS,
    help:
      "kernel: the stack's stream scheduler for the send buffer (prio: stream i has priority i)",
  },
  dataPath: {
    kind: "string",
    default: "event-loop",
    choices: DATA_PATHS,
    help:
      "move messages on the event loop, or in two I/O Workers per association (the earlier path, for comparison)",
  },
  sendBufferSize: {
    kind: "integer",
    default: 256 * 1024,
    min: 0,
    help: "socket send buffer in bytes: small keeps the queue, and the order, in the scheduler",
  },
  receiveBufferSize: {
    kind: "integer",
    default: 4 * 1024 * 1024,
    min: 0,
    help: "socket receive buffer in bytes (0: system default)",
  },
  sackFrequency: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 65535,
    help: "SCTP: packets received before an acknowledgement is sent at once (1: every packet; " +
      "0: the stack's own, 2)",
  },
  sackDelay: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 500,
    help: "SCTP: ms an acknowledgement may wait, at most 500 (0: the stack's own, 200)",
  },
  udpPort: {
    kind: "integer",
    default: 9899,
    min: 0,
    max: 65535,
    help: "UDP port of SCTP over UDP (RFC 6951): usrsctp always, kernel with --udp-encapsulation",
  },
  udpEncapsulation: {
    kind: "boolean",
    default: false,
    help: "kernel: also take SCTP over UDP on --udp-port, for peers behind NATs that drop SCTP " +
      "(needs sysctl net.sctp.udp_port set to it)",
  },
  maxAssociations: {
    kind: "integer",
    default: 32,
    min: 1,
    help: "associations (tcp: connections) served at once; one more is refused (RESET 0, 503; " +
      "tcp: a 503 response) and closed",
  },
  maxInFlight: {
    kind: "integer",
    default: 1024,
    min: 1,
    help: "requests in flight per association; one more is answered RESET 503 " +
      "(tcp: pipelined requests read ahead; reading pauses at this many)",
  },
  maxRequestSize: {
    kind: "integer",
    default: 64 * 1024,
    min: 1024,
    max: 64 * 1024 * 1024,
    help: "largest request message (tcp: request head) in bytes; a larger one is answered 431, " +
      "the rest dropped (tcp: the connection closes)",
  },
  noKeepAlive: {
    kind: "boolean",
    default: false,
    help: "tcp: one request per connection (every response carries Connection: close)",
  },
  idleTimeout: {
    kind: "integer",
    default: 300,
    min: 0,
    help: "seconds an association with nothing in flight may stay silent before it is closed " +
      "(0: never)",
  },
  sendTimeout: {
    kind: "integer",
    default: 60,
    min: 0,
    help: "seconds responses may wait on a peer that takes no data before its association " +
      "is aborted (0: never)",
  },
  handshakeTimeout: {
    kind: "integer",
    default: 5,
    min: 1,
    max: 3600,
    help: "tcpmux: seconds a connected peer has to send its hello",
  },
  mappingCacheSize: {
    kind: "integer",
    default: 256,
    min: 0,
    help: "idle file mappings kept for reuse",
  },
  logLevel: { kind: "string", default: "info", choices: LOG_LEVELS, help: "log level" },
} as const satisfies OptionTable;
