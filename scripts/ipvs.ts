/**
 * `deno task ipvs <virtual> <real> [<real> ...]`: puts Linux IPVS in front of
 * several flowsched servers over kernel SCTP and keeps dead ones out of it
 * (see scripts/scale/ipvs.ts and scripts/scale/health.ts).
 *
 * @module
 */

import { ConfigError, helpText, parseOptions } from "../cli/options.ts";
import { createLogger, LOG_LEVELS, type LogLevel } from "../cli/log.ts";
import { HealthChecker } from "./scale/health.ts";
import { IPVS_SCHEDULERS, type IpvsScheduler, IpvsService, parseIpPort } from "./scale/ipvs.ts";

const OPTIONS = {
  scheduler: {
    kind: "string",
    default: "rr",
    choices: IPVS_SCHEDULERS,
    short: "s",
    help: "how IPVS picks a server for a new association: round robin, source hashing, Maglev",
  },
  hashPort: {
    kind: "boolean",
    default: false,
    help: "sh, mh: hash the client's port too, so one client's associations spread",
  },
  interval: { kind: "integer", default: 1000, min: 50, help: "ms between health checks" },
  probeTimeout: {
    kind: "integer",
    default: 2000,
    min: 10,
    help: "ms a health check may take before the server counts as down",
  },
  fall: {
    kind: "integer",
    default: 3,
    min: 1,
    help: "health checks in a row that must time out before a server leaves the service " +
      "(a refused association or a 5xx answer takes it out at once)",
  },
  path: { kind: "string", default: "/", help: "the path each health check sends HEAD for" },
  replace: {
    kind: "boolean",
    default: false,
    help: "take over the virtual service if it exists (left by a front that was killed)",
  },
  logLevel: { kind: "string", default: "info", choices: LOG_LEVELS, help: "log level" },
} as const;

const USAGE = `Usage: deno task ipvs <virtual address:port> <server address:port> [...] [options]

Creates the IPVS virtual SCTP service <virtual> (NAT forwarding) over flowsched servers on kernel
SCTP, and health-checks them with flowsched's own client: one standing association per server and
HEAD <path> on it each interval. A server whose association is aborted, refused or answered with
5xx leaves the service at once (new associations go to the others), one that times out --fall
times in a row too; one that answers again comes back. On SIGINT or SIGTERM the service is removed.

The virtual address must be one of this host's (e.g. ip addr add 10.10.9.9/32 dev lo), and this
host must be the servers' route back to the clients. Needs root (CAP_NET_ADMIN) and ipvsadm.

Example, the lab's proxy namespace in front of 3 servers:
  deno task ipvs 10.10.9.9:7100 10.10.2.2:7100 10.10.3.2:7100 10.10.4.2:7100`;

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, OPTIONS));
      Deno.exit(0);
    }
    const { values, positionals } = parsed;
    const [virtual, ...reals] = positionals;
    if (!virtual || reals.length === 0) {
      throw new ConfigError("give the virtual address:port and at least one server; see --help");
    }
    try {
      reals.forEach((real) => parseIpPort(real, "server"));
      if (new Set(reals).size !== reals.length) throw new TypeError("a server is given twice");
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
    const log = createLogger(values.logLevel as LogLevel, "ipvs");
    const service = new IpvsService({
      virtual,
      scheduler: values.scheduler as IpvsScheduler,
      hashPort: values.hashPort,
    });
    await service.create(values.replace);
    const checker = new HealthChecker({
      service,
      reals,
      intervalMs: values.interval,
      timeoutMs: values.probeTimeout,
      fall: values.fall,
      path: values.path,
      onChange: ({ real, state, reason }) => {
        if (state === "up") log.info("server in service", { server: real });
        else if (state === "down") log.warn("server out of service", { server: real, reason });
        else log.warn("server not in service yet", { server: real, reason });
      },
      onError: (error) => log.error("cannot change the IPVS table", { error: error.message }),
    });
    const stop = async () => {
      await checker.stop();
      await service.destroy().catch((error) =>
        log.error("cannot remove the virtual service", { error: error.message })
      );
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    try {
      await checker.start();
    } catch (error) {
      await service.destroy().catch(() => {});
      throw error;
    }
    log.info("virtual service up", {
      virtual,
      scheduler: service.scheduler,
      servers: reals,
      inService: [...checker.inService],
      intervalMs: values.interval,
    });
  } catch (error) {
    console.error(`ipvs: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError || error instanceof TypeError ? 2 : 1);
  }
}
