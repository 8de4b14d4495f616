/**
 * What `bench thesis` records: one {@linkcode ThesisRun} per timed phase,
 * written by the lab side and read by the report. One definition of
 * throughput everywhere: body bytes the client received and checked, over the
 * wall time of the timed phase at the client.
 *
 * @module
 */

/** The experiments, named as in the thesis (chapter 5) and the seed paper. */
export const EXPERIMENTS = ["5.2", "5.3", "5.4", "5.5", "004"] as const;

/** One experiment's id. */
export type Experiment = (typeof EXPERIMENTS)[number];

/** One finished request (or, in 5.5, one page load), as the client saw it. */
export interface Fetch {
  /** When it completed, in ms since the timed phase started. */
  t: number;
  /** From sending the request (first request of a page) to its last body byte, in ms. */
  ms: number;
  /** Body bytes received (a page: all its resources). */
  bytes: number;
  /** Status 200 and the body length right (and its sha256, for the sampled ones). */
  ok: boolean;
}

/** One timed phase: one server, one client configuration, one repetition. */
export interface ThesisRun {
  experiment: Experiment;
  /** The configuration's name within the experiment, e.g. "flowsched sctp" or "scf zipf". */
  row: string;
  /** Who served: flowsched's server, or nginx (the baseline a user would run instead). */
  server: "flowsched" | "nginx";
  /** What carried the bytes from the server: kernel SCTP, TCP, or tcpmux over TCP. */
  transport: "sctp" | "tcp" | "tcpmux";
  /** Whether the client went through flowsched's proxy (HTTP/TCP in, the association out). */
  proxy: boolean;
  /** Everything else that defines the configuration (policy, popularity, prefetch, ...). */
  variant: Record<string, string | number | boolean>;
  /** Repetition index, from 0. */
  repeat: number;
  /** Wall time of the timed phase at the client, in seconds. */
  seconds: number;
  /** Requests (5.5: page loads) completed in the phase, failed ones included. */
  requests: number;
  /** Of those, how many failed (bad status, short body, wrong hash, error). */
  failed: number;
  /** Body bytes received in the phase. */
  bytes: number;
  /** Busy share (0..1) of the lab's one CPU during the phase: server, client and kernel. */
  labCpu: number;
  /** CPU time of the server process(es) during the phase, in ms (user + system). */
  serverCpuMs: number;
  /** CPU time of flowsched's proxy during the phase, in ms, when the client went through it. */
  proxyCpuMs?: number;
  /** Connections (or associations) the client opened during the phase. */
  connections: number;
  /** Per request (5.5: per page load). */
  fetches: Fetch[];
}

/** Everything one `bench thesis` run hands to the report. */
export interface ThesisResults {
  /** ISO time the run started. */
  started: string;
  /** The options the run was made with, and the lab's link shapes. */
  setup: Record<string, string | number | boolean>;
  runs: ThesisRun[];
}
