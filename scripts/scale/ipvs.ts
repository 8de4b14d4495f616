/**
 * Linux IPVS as the front of several flowsched servers: a virtual SCTP
 * service whose real servers are flowsched servers over kernel SCTP, driven
 * through `ipvsadm`, and a health checker that takes a dead server out and
 * puts it back when it answers again.
 *
 * IPVS balances associations, not requests: each association (the INIT from a
 * client's address and port) is given to one real server and stays there, and
 * that server schedules its responses as it always does. Forwarding is NAT
 * ("masquerading", `ipvsadm -m`): the director must be the real servers'
 * route back to the clients, as the proxy namespace is in the lab.
 *
 * @module
 */

import { FlowClient } from "../../protocol/client.ts";

/** IPVS schedulers offered: round robin, source hashing, Maglev hashing. */
export const IPVS_SCHEDULERS = ["rr", "sh", "mh"] as const;

/** One of {@link IPVS_SCHEDULERS}. */
export type IpvsScheduler = typeof IPVS_SCHEDULERS[number];

/** `ipvsadm` failed; the message has its arguments and what it said. */
export class IpvsError extends Error {
  override name = "IpvsError";
}

/** Runs ipvsadm with `args` and returns its stdout; throws {@link IpvsError} on failure. */
export type IpvsadmRunner = (args: string[]) => Promise<string>;

/** Runs the system's `ipvsadm`. */
export const runIpvsadm: IpvsadmRunner = async (args) => {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("ipvsadm", { args, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new IpvsError("ipvsadm is not installed: apt-get install ipvsadm");
    }
    throw error;
  }
  if (output.code !== 0) {
    const said = new TextDecoder().decode(output.stderr).trim();
    const hint = /Permission denied|Operation not permitted/.test(said)
      ? " (IPVS needs root, or CAP_NET_ADMIN)"
      : "";
    throw new IpvsError(`ipvsadm ${args.join(" ")}: ${said || `exit ${output.code}`}${hint}`);
  }
  return new TextDecoder().decode(output.stdout);
};

/** Checks `host:port` (IPv4) and returns it; throws a TypeError naming the bad one. */
export function parseIpPort(text: string, what: string): string {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(text);
  if (!match || match[1].split(".").some((n) => Number(n) > 255) || !(Number(match[2]) <= 65535)) {
    throw new TypeError(`${what} "${text}" is not an IPv4 address:port, e.g. 10.10.9.9:7100`);
  }
  return text;
}

/** Options of {@link IpvsService}. */
export interface IpvsServiceOptions {
  /** The virtual service, `address:port`; the address must be local to the director. */
  virtual: string;
  /** @default "rr" */
  scheduler?: IpvsScheduler;
  /** sh and mh: hash the client's port too, so one client's associations spread. @default false */
  hashPort?: boolean;
  /** @default runIpvsadm */
  ipvsadm?: IpvsadmRunner;
}

/** A virtual SCTP service and its real servers, in the kernel's IPVS table. */
export class IpvsService {
  readonly virtual: string;
  readonly scheduler: IpvsScheduler;
  readonly #hashPort: boolean;
  readonly #ipvsadm: IpvsadmRunner;

  constructor(options: IpvsServiceOptions) {
    this.virtual = parseIpPort(options.virtual, "virtual service");
    this.scheduler = options.scheduler ?? "rr";
    this.#hashPort = options.hashPort ?? false;
    this.#ipvsadm = options.ipvsadm ?? runIpvsadm;
  }

  /** Adds the virtual service to the table; fails if it exists already. */
  async create(): Promise<void> {
    const flags = this.#hashPort && this.scheduler !== "rr" ? ["-b", `${this.scheduler}-port`] : [];
    try {
      await this.#ipvsadm(["-A", "--sctp-service", this.virtual, "-s", this.scheduler, ...flags]);
    } catch (error) {
      if (!/exists/i.test((error as Error).message)) throw error;
      throw new IpvsError(
        `the virtual service sctp ${this.virtual} exists already (another front running?); ` +
          `remove it with: ipvsadm -D --sctp-service ${this.virtual}`,
      );
    }
  }

  /** Adds a real server (`address:port`), forwarded by NAT. */
  async add(real: string): Promise<void> {
    await this.#ipvsadm(["-a", "--sctp-service", this.virtual, "-r", real, "-m", "-w", "1"]);
  }

  /** Removes a real server: new associations no longer go to it. */
  async remove(real: string): Promise<void> {
    await this.#ipvsadm(["-d", "--sctp-service", this.virtual, "-r", real]);
  }

  /** Removes the virtual service and its real servers. */
  async destroy(): Promise<void> {
    await this.#ipvsadm(["-D", "--sctp-service", this.virtual]);
  }

  /** The real servers in the table, each with the associations it was given so far. */
  async realServers(): Promise<Map<string, { associations: number }>> {
    const text = await this.#ipvsadm([
      "-L",
      "-n",
      "--exact",
      "--stats",
      "--sctp-service",
      this.virtual,
    ]);
    return parseStats(text);
  }
}

/**
 * Parses `ipvsadm -L -n --exact --stats` for one service: each `->` row is a
 * real server, its first number the connections (associations) it was given.
 */
export function parseStats(text: string): Map<string, { associations: number }> {
  const reals = new Map<string, { associations: number }>();
  for (const line of text.split("\n")) {
    const match = /^\s*->\s+(\S+)\s+(\d+)\s/.exec(line);
    if (match) reals.set(match[1], { associations: Number(match[2]) });
  }
  return reals;
}

/** A failed probe: why, and whether it only ran out of time (which a busy server may do). */
export interface ProbeFailure {
  reason: string;
  timedOut: boolean;
}

/**
 * Asks a real server, with our own client, whether it serves: a new kernel
 * SCTP association and `HEAD <path>` answered below 500 within `timeoutMs`.
 * Resolves with undefined when healthy, else with the failure.
 */
export async function probeServer(
  real: string,
  options: { path: string; timeoutMs: number },
): Promise<ProbeFailure | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  const connecting = FlowClient.connect(`kernel://${real}`, { streams: 1 });
  try {
    const timeout = new Promise<never>((_, reject) =>
      controller.signal.addEventListener("abort", () => reject(new Error("timeout")), {
        once: true,
      })
    );
    const client = await Promise.race([connecting, timeout]);
    try {
      const response = await client.request(options.path, {
        method: "HEAD",
        signal: controller.signal,
      });
      await response.bytes();
      if (response.status < 500) return undefined;
      return { reason: `HEAD ${options.path} answered ${response.status}`, timedOut: false };
    } finally {
      await client.close().catch(() => {});
    }
  } catch (error) {
    // A connect that finishes after the timeout must not leave its association open.
    connecting.then((late) => late.close().catch(() => {}), () => {});
    return controller.signal.aborted
      ? { reason: `no answer in ${options.timeoutMs} ms`, timedOut: true }
      : { reason: (error as Error).message, timedOut: false };
  } finally {
    clearTimeout(timer);
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
  /** Probes a server; the default is {@link probeServer}. */
  probe?: (real: string) => Promise<ProbeFailure | undefined>;
  /** Called on each change of a server's state. */
  onChange?: (event: HealthEvent) => void;
  /** Called when a round fails (ipvsadm refused a change); the next round tries again. */
  onError?: (error: Error) => void;
}

/**
 * Probes every real server each interval. A probe that fails outright (the
 * association refused or aborted, an answer of 500 or more) takes a server
 * out of the service at once: a killed kernel-SCTP server's kernel answers
 * the probe's INIT with an ABORT, so it is out within one interval. Timeouts
 * take `fall` in a row, since a loaded but healthy server can be slow to
 * answer. One good probe puts a server back (or in, the first time).
 */
export class HealthChecker {
  readonly #options: HealthCheckerOptions;
  readonly #inService = new Set<string>();
  /** Servers probed at least once: the first failure of each is reported too. */
  readonly #seen = new Set<string>();
  /** Timed-out probes in a row, per server. */
  readonly #timeouts = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #round: Promise<void> = Promise.resolve();

  constructor(options: HealthCheckerOptions) {
    this.#options = options;
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
    const { reals, service, onChange } = this.#options;
    const probe = this.#options.probe ??
      ((real: string) =>
        probeServer(real, {
          path: this.#options.path ?? "/",
          timeoutMs: this.#options.timeoutMs ?? 2000,
        }));
    const results = await Promise.all(reals.map(probe));
    for (const [i, failure] of results.entries()) {
      const real = reals[i];
      const was = this.#inService.has(real);
      const timeouts = failure?.timedOut ? (this.#timeouts.get(real) ?? 0) + 1 : 0;
      this.#timeouts.set(real, timeouts);
      if (failure === undefined && !was) {
        await service.add(real);
        this.#inService.add(real);
        onChange?.({ real, state: "up" });
      } else if (failure && was && (!failure.timedOut || timeouts >= (this.#options.fall ?? 3))) {
        await service.remove(real);
        this.#inService.delete(real);
        onChange?.({ real, state: "down", reason: failure.reason });
      } else if (failure && !was && !this.#seen.has(real)) {
        onChange?.({ real, state: "not-ready", reason: failure.reason });
      }
      this.#seen.add(real);
    }
  }

  #schedule() {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#round = this.checkOnce()
        .catch((error) => this.#options.onError?.(error))
        .finally(() => this.#schedule());
    }, this.#options.intervalMs ?? 1000);
  }

  /** Stops probing (after the round in progress). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round.catch(() => {});
  }
}
