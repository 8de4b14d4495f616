/**
 * Health checks of the real servers behind IPVS, with flowsched's own client.
 *
 * Each server gets one kernel-SCTP association that stays open, and a
 * `HEAD <path>` on it each interval. A killed server's kernel aborts that
 * association, and the checker takes the server out at once, without waiting
 * for the next round; a server that hangs is out after `fall` timed-out
 * probes. Once a server's association has ended, each round tries a new one.
 *
 * Opening an association costs more than a request on an open one, and a
 * standing association is what tells of a killed server at once; the checker
 * shares one CPU with the servers in the lab.
 *
 * @module
 */

import { FlowClient } from "../../protocol/client.ts";
import type { IpvsService } from "./ipvs.ts";

/** A failed probe: why, and whether it only ran out of time (which a busy server may do). */
export interface ProbeFailure {
  reason: string;
  timedOut: boolean;
}

/** Probes servers by name (`address:port`). */
export interface Prober {
  /** Resolves with undefined when `real` is healthy, else with the failure. */
  probe(real: string): Promise<ProbeFailure | undefined>;
  /** Lets go of every server's association. */
  close(): Promise<void>;
}

/** Options of {@link AssociationProber}. */
export interface AssociationProberOptions {
  /** The path each probe sends HEAD for. */
  path: string;
  /** ms a probe (connect and HEAD) may take. */
  timeoutMs: number;
  /** Called when a server's standing association ends by itself (abort, shutdown). */
  onLost(real: string, reason: string): void;
}

/** The default {@link Prober}: a standing kernel-SCTP association per server, HEAD on it. */
export class AssociationProber implements Prober {
  readonly #options: AssociationProberOptions;
  readonly #clients = new Map<string, FlowClient>();
  #closed = false;

  constructor(options: AssociationProberOptions) {
    this.#options = options;
  }

  async probe(real: string): Promise<ProbeFailure | undefined> {
    const { path, timeoutMs } = this.#options;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const client = this.#clients.get(real) ?? await this.#connect(real, controller.signal);
      const response = await client.request(path, { method: "HEAD", signal: controller.signal });
      await response.bytes();
      if (response.status < 500) return undefined;
      return { reason: `HEAD ${path} answered ${response.status}`, timedOut: false };
    } catch (error) {
      if (controller.signal.aborted) {
        return { reason: `no answer in ${timeoutMs} ms`, timedOut: true };
      }
      // A failed request on a standing association: start afresh next time.
      this.#drop(real);
      return { reason: (error as Error).message, timedOut: false };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
  }

  async #connect(real: string, signal: AbortSignal): Promise<FlowClient> {
    const connecting = FlowClient.connect(`kernel://${real}`, { streams: 1 });
    const aborted = new Promise<never>((_, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason), { once: true })
    );
    let client: FlowClient;
    try {
      client = await Promise.race([connecting, aborted]);
    } catch (error) {
      // A connect that finishes after the timeout must not leave its association open.
      connecting.then((late) => late.close().catch(() => {}), () => {});
      throw error;
    }
    if (this.#closed) {
      await client.close().catch(() => {});
      throw new Error("the checker is stopping");
    }
    this.#clients.set(real, client);
    client.ended.then((reason) => {
      if (this.#clients.get(real) !== client) return;
      this.#clients.delete(real);
      this.#options.onLost(real, reason.message);
    });
    return client;
  }

  #drop(real: string) {
    const client = this.#clients.get(real);
    this.#clients.delete(real);
    client?.close().catch(() => {});
  }
}

/** What {@link HealthChecker} reports on each change. */
export interface HealthEvent {
  real: string;
  /** up: joined the service; down: left it; not-ready: failed its first probe. */
  state: "up" | "down" | "not-ready";
  /** Why a server went down or is not ready. */
  reason?: string;
}

/** Options of {@link HealthChecker}. */
export interface HealthCheckerOptions {
  service: IpvsService;
  /** Real servers, `address:port`. */
  reals: string[];
  /** ms between probe rounds. @default 1000 */
  intervalMs?: number;
  /** ms a probe may take. @default 2000 */
  timeoutMs?: number;
  /** Probes in a row that must time out before a server leaves the service. @default 3 */
  fall?: number;
  /** The path probed with HEAD. @default "/" */
  path?: string;
  /**
   * Makes the prober, given what to call when a server's standing association
   * is lost. The default makes an {@link AssociationProber}.
   */
  prober?: (onLost: (real: string, reason: string) => void) => Prober;
  /** Called on each change of a server's state. */
  onChange?: (event: HealthEvent) => void;
  /** Called when a change to the table fails (ipvsadm refused it); the next round tries again. */
  onError?: (error: Error) => void;
}

/**
 * Keeps the service's real servers to those that answer. A probe that fails
 * outright (an association refused or aborted, an answer of 500 or more), or
 * a lost association, takes a server out of the service at once. Timeouts
 * take `fall` in a row, since a loaded but healthy server can be slow to
 * answer. One good probe puts a server back (or in, the first time).
 */
export class HealthChecker {
  readonly #options: HealthCheckerOptions;
  readonly #prober: Prober;
  readonly #inService = new Set<string>();
  /** Servers probed at least once: the first failure of each is reported too. */
  readonly #seen = new Set<string>();
  /** Timed-out probes in a row, per server. */
  readonly #timeouts = new Map<string, number>();
  /** Standing associations lost so far, per server. */
  readonly #losses = new Map<string, number>();
  /** Changes to the table, one at a time. */
  #changes: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #round: Promise<void> = Promise.resolve();

  constructor(options: HealthCheckerOptions) {
    this.#options = options;
    const onLost = (real: string, reason: string) => {
      this.#losses.set(real, (this.#losses.get(real) ?? 0) + 1);
      this.#apply(real, { reason, timedOut: false });
    };
    this.#prober = options.prober?.(onLost) ?? new AssociationProber({
      path: options.path ?? "/",
      timeoutMs: options.timeoutMs ?? 2000,
      onLost,
    });
  }

  /** The real servers in the service now. */
  get inService(): ReadonlySet<string> {
    return this.#inService;
  }

  /** Runs the first round (servers that pass it join the service), then one each interval. */
  async start(): Promise<void> {
    await this.checkOnce();
    this.#schedule();
  }

  /** One round: probes every server and changes the table where a state changed. */
  async checkOnce(): Promise<void> {
    // Each outcome is applied as its probe settles, in the order things happened.
    await Promise.all(this.#options.reals.map(async (real) => {
      const losses = this.#losses.get(real) ?? 0;
      const failure = await this.#prober.probe(real);
      // An answer on an association lost since says nothing of the server now.
      if (failure === undefined && (this.#losses.get(real) ?? 0) !== losses) return;
      this.#apply(real, failure);
    }));
    await this.#changes;
  }

  /** Stops probing (after the round in progress) and closes the probes' associations. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
    await this.#changes;
    await this.#prober.close();
  }

  /** Queues the table change, if any, that a probe's outcome calls for. */
  #apply(real: string, failure: ProbeFailure | undefined) {
    this.#changes = this.#changes.then(() => this.#change(real, failure)).catch((error) =>
      this.#options.onError?.(error)
    );
  }

  async #change(real: string, failure: ProbeFailure | undefined) {
    if (this.#stopped) return;
    const { service, onChange } = this.#options;
    const was = this.#inService.has(real);
    const timeouts = failure?.timedOut ? (this.#timeouts.get(real) ?? 0) + 1 : 0;
    this.#timeouts.set(real, timeouts);
    const first = !this.#seen.has(real);
    this.#seen.add(real);
    if (failure === undefined && !was) {
      await service.add(real);
      this.#inService.add(real);
      onChange?.({ real, state: "up" });
    } else if (failure && was && (!failure.timedOut || timeouts >= (this.#options.fall ?? 3))) {
      await service.remove(real);
      this.#inService.delete(real);
      onChange?.({ real, state: "down", reason: failure.reason });
    } else if (failure && !was && first) {
      onChange?.({ real, state: "not-ready", reason: failure.reason });
    }
  }

  #schedule() {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#round = this.checkOnce().finally(() => this.#schedule());
    }, this.#options.intervalMs ?? 1000);
  }
}
