/**
 * Linux IPVS as the front of several flowsched servers: a virtual SCTP
 * service whose real servers are flowsched servers over kernel SCTP, driven
 * through `ipvsadm` (the health checker that keeps dead servers out is in
 * `health.ts`).
 *
 * IPVS balances associations, not requests: each association (the INIT from a
 * client's address and port) is given to one real server and stays there, and
 * that server schedules its responses as it always does. Forwarding is NAT
 * ("masquerading", `ipvsadm -m`): the director must be the real servers'
 * route back to the clients, as the proxy namespace is in the lab.
 *
 * @module
 */

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

  /**
   * Adds the virtual service to the table. If it exists already, `replace`
   * removes it first (one left by a front that was killed); otherwise that
   * is an error.
   */
  async create(replace = false): Promise<void> {
    const flags = this.#hashPort && this.scheduler !== "rr" ? ["-b", `${this.scheduler}-port`] : [];
    const add = ["-A", "--sctp-service", this.virtual, "-s", this.scheduler, ...flags];
    try {
      await this.#ipvsadm(add);
    } catch (error) {
      if (!/exists/i.test((error as Error).message)) throw error;
      if (replace) {
        await this.destroy();
        await this.#ipvsadm(add);
        return;
      }
      throw new IpvsError(
        `the virtual service sctp ${this.virtual} exists already (another front running?); ` +
          `take it over with --replace, or remove it with: ipvsadm -D --sctp-service ${this.virtual}`,
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
