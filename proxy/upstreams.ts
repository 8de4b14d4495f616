/**
 * The proxy's upstream servers: one `Upstream` (association) per server,
 * every server holding the same site, and each request sent to one of them
 * by its path, with rendezvous hashing (`rendezvous.ts`).
 *
 * - While all are up, a path always goes to the same server, so each
 *   server's page cache holds its share of the site only.
 * - A path goes to the highest-weight server among those whose association
 *   is up. When one goes down its paths, and only they, move to the others
 *   (each to its next-highest weight); when its association is back (the
 *   `Upstream`'s reconnect loop waits up to 5 s after a failed attempt,
 *   which gives up after 2 s, so the server is tried within about 7 s of
 *   answering again) exactly those paths return to it.
 * - When none is up, a request waits for its highest-weight server as a
 *   single upstream does (`connectTimeout`, then 502).
 * - Requests in flight on a server that dies fail (502) as with one server;
 *   they are not sent again elsewhere.
 * - The cache does not care which server sent a body: they serve one site,
 *   so its keys stay the paths.
 *
 * A server is known by `<transport>://host:port` (a `udp` key or a path in
 * its URL does not count): two URLs naming the same server are refused.
 *
 * @module
 */

import type { Logger } from "../cli/log.ts";
import type { FlowResponse } from "../protocol/client.ts";
import { boundedChoice, highestWeight, pathHash, serverSeed } from "./rendezvous.ts";
import type { UpstreamInfo } from "./stats.ts";
import { Upstream, type UpstreamOptions } from "./upstream.ts";

/** UpstreamSet options: the servers' URLs, and what every association is given. */
export interface UpstreamSetOptions extends Omit<UpstreamOptions, "url" | "onChange"> {
  /** `<transport>://host:port` of each server, at least one. */
  urls: readonly string[];
  /**
   * Bounded loads: 0 (off), or the most requests in flight a server may hold,
   * in percent of the mean (at least 100; `rendezvous.ts`, `boundedChoice`).
   * @default 0
   */
  balanceFactor?: number;
}

/** Several upstream servers of one site, each request routed by its path. */
export class UpstreamSet {
  /** The upstreams, in the order their URLs were given. */
  readonly upstreams: readonly Upstream[];
  /** The servers' URLs, in the order given. */
  readonly urls: readonly string[];
  readonly #seeds: number[];
  readonly #log: Logger;
  /** Per upstream: its paths went to others since it was last up (its return is logged). */
  readonly #moved: boolean[];
  readonly #isUp = (index: number) => this.upstreams[index].up;
  readonly #load = (index: number) => this.upstreams[index].inFlight;
  readonly #balanceFactor: number;
  /** Requests sent to another server than their path's because it held more than its bound. */
  rebalanced = 0;

  /** Throws TypeError for no URL, a malformed one, or two naming the same server. */
  constructor(options: UpstreamSetOptions) {
    const { urls, balanceFactor, ...shared } = options;
    if (urls.length === 0) throw new TypeError("no upstream server given");
    this.#balanceFactor = balanceFactor ?? 0;
    if (!(this.#balanceFactor === 0 || this.#balanceFactor >= 100)) {
      throw new TypeError(
        `the hash balance factor must be 0 (off) or a percentage of at least 100, got ${balanceFactor}`,
      );
    }
    this.#log = options.log;
    const names = new Map<string, string>();
    this.upstreams = urls.map((url, index) => {
      const upstream = new Upstream({ ...shared, url, onChange: (up) => this.#changed(index, up) });
      const { transport, host, port } = upstream.address;
      const name = `${transport}://${host.includes(":") ? `[${host}]` : host}:${port}`;
      const earlier = names.get(name);
      if (earlier !== undefined) {
        throw new TypeError(
          `upstream "${url}" names the same server as "${earlier}" (${name}); give each server once`,
        );
      }
      names.set(name, url);
      return upstream;
    });
    this.urls = [...urls];
    this.#seeds = [...names.keys()].map(serverSeed);
    this.#moved = this.upstreams.map(() => false);
  }

  /** Starts connecting to every server. */
  start(): void {
    for (const upstream of this.upstreams) upstream.start();
  }

  /** Each upstream's state for the stats endpoint, in the order given. */
  info(): UpstreamInfo[] {
    return this.upstreams.map((upstream) => upstream.info());
  }

  /**
   * The upstream a request for `target` goes to: by its path (a query does
   * not count), the highest-weight one that is up, else the highest-weight
   * one (the request then waits for it). With a balance factor, the
   * highest-weight one that is up and under its bound.
   */
  pick(target: string): Upstream {
    const upstreams = this.upstreams;
    if (upstreams.length === 1) return upstreams[0];
    const path = pathHash(target);
    const first = highestWeight(this.#seeds, path);
    const preferred = upstreams[first].up ? first : highestWeight(this.#seeds, path, this.#isUp);
    if (preferred < 0) return upstreams[first];
    if (preferred !== first) this.#moved[first] = true;
    if (this.#balanceFactor === 0) return upstreams[preferred];
    const bounded = boundedChoice(
      this.#seeds,
      path,
      this.#isUp,
      this.#load,
      this.#balanceFactor,
    );
    if (bounded !== preferred) this.rebalanced++;
    return upstreams[bounded];
  }

  /** Sends a request to the upstream `pick(target)` chooses; see `Upstream.request`. */
  request(
    target: string,
    options: { method?: "GET" | "HEAD"; signal: AbortSignal },
  ): Promise<FlowResponse> {
    return this.pick(target).request(target, options);
  }

  /** Closes every association and stops reconnecting. */
  async close(): Promise<void> {
    await Promise.all(this.upstreams.map((upstream) => upstream.close()));
  }

  /** One log line per change that moves paths between servers (none with one server). */
  #changed(index: number, up: boolean) {
    if (this.upstreams.length === 1) return;
    const upCount = this.upstreams.filter((member) => member.up).length;
    const fields = { upstream: this.urls[index], up: `${upCount} of ${this.urls.length}` };
    if (!up) {
      this.#moved[index] = true;
      const message = upCount > 0
        ? "upstream down: its paths go to the other upstreams"
        : "upstream down, and no other is up: requests wait for their first upstream";
      this.#log.warn(message, fields);
    } else if (this.#moved[index]) {
      this.#moved[index] = false;
      this.#log.info("upstream up: its paths come back to it", fields);
    }
  }
}
