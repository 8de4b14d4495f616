/**
 * What `bench scale` records: one {@linkcode ScaleRun} per timed phase,
 * written by the lab side and read by the report. Throughput is body bytes
 * the client received and checked, over the wall time of the timed phase.
 *
 * @module
 */

/**
 * What spreads the load over the servers: Linux IPVS; the proxy's path
 * hashing; the same with bounded loads (`--hash-balance-factor`).
 */
export const FRONTS = ["ipvs", "proxy", "proxy-bounded"] as const;

/** One of {@link FRONTS}. */
export type Front = (typeof FRONTS)[number];

/** One timed phase: one front, n servers, one repetition. */
export interface ScaleRun {
  front: Front;
  /** Servers behind the front, each on its own link. */
  servers: number;
  /** Repetition index, from 0. */
  repeat: number;
  /** Wall time of the timed phase at the client, in seconds. */
  seconds: number;
  /** Requests completed in the phase, failed ones included. */
  requests: number;
  /** Of those, how many failed (bad status, short body, wrong hash, error). */
  failed: number;
  /** Body bytes received in the phase. */
  bytes: number;
  /** Busy share (0..1) of the lab's one CPU during the phase. */
  labCpu: number;
  /** CPU time of the server processes during the phase, in ms (user + system). */
  serverCpuMs: number;
  /** CPU time of the front's process (the proxy, or IPVS's health checker), in ms. */
  frontCpuMs: number;
  /**
   * Per server, what it was given: associations (ipvs, from ipvsadm's
   * counters) or requests (proxy, from its stats), warm-up included.
   */
  shares: number[];
  /** proxy-bounded: requests sent off their path's server because it was over its bound. */
  rebalanced?: number;
}

/** Everything one `bench scale` run hands to the report. */
export interface ScaleResults {
  /** ISO time the run started. */
  started: string;
  /** The options the run was made with. */
  setup: Record<string, string | number>;
  runs: ScaleRun[];
}
