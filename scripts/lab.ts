/**
 * CLI of the lab (see scripts/lab/lab.ts): `deno task lab [flags] -- <command>`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkServers, LabError, MAX_SERVERS, parseLinks, runInLab } from "./lab/lab.ts";

/** Usage text of the CLI. */
export const USAGE = `Usage: deno task lab [flags] -- <command> [args...]

Boots a User-Mode Linux kernel (kernel SCTP, veth, netem, tbf, IPVS) with the
host filesystem as root and network namespaces client, proxy, server:

  client 10.10.1.1 --cp-- 10.10.1.2 proxy 10.10.2.1 --ps--- 10.10.2.2 server
                                          10.10.3.1 --ps2-- 10.10.3.2 server2
                                          ...       (--servers N)

runs <command> in the lab's root namespace in the current directory (one
argument is run by sh -c), streams its output, and exits with its exit code.
The command starts its processes with 'ip netns exec <ns> ...'. It gets
LAB=1, LAB_CLIENT_IP, LAB_PROXY_IP, LAB_PROXY_UPSTREAM_IP, LAB_SERVER_IP,
LAB_SERVERS, LAB_SERVER_IPS and LAB_SERVER_NAMESPACES (space-separated).

Flags:
  --servers N                  server namespaces behind the proxy, 1 to ${MAX_SERVERS},
                               each on its own link (default 1)
  --link LINK:KEY=VALUE[,...]  emulate a WAN on link cp, ps, ps2, ... in both
                               directions (repeatable); keys: delay=25ms jitter=5ms
                               loss=1% rate=10mbit queue=50ms (queue: longest
                               wait at the rate bottleneck; default 50ms).
                               Default: no emulation.
  --timeout SECONDS            kill the lab after this long, exit 124 (default 600)
  --memory SIZE                memory of the lab kernel (default 2G)
  --keep                       keep the run directory under .lab/ (console.log)
  -h, --help                   show this help

Exit codes: the command's; 124 timeout; 130 interrupted; 125 the lab could not
run (reason on stderr); 2 bad flags.

Example:
  deno task lab --link cp:delay=25ms,rate=10mbit -- 'ip netns exec client ip route'
`;

const OPTIONS = {
  link: { type: "string", multiple: true },
  servers: { type: "string", default: "1" },
  timeout: { type: "string", default: "600" },
  memory: { type: "string", default: "2G" },
  keep: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** Splits the arguments into the lab's flags and the command, which starts at `--` or the first non-flag. */
export function splitArgs(args: string[]): { flags: string[]; command: string[] } {
  // `deno task lab -- --link ... -- cmd` passes the first `--` on; no command starts with a dash.
  if (args[0] === "--" && args[1]?.startsWith("-")) args = args.slice(1);
  let i = 0;
  while (i < args.length && args[i] !== "--" && args[i].startsWith("-")) {
    const name = args[i].replace(/^--?/, "");
    const takesValue = !name.includes("=") &&
      ["link", "servers", "timeout", "memory"].includes(name);
    i += takesValue ? 2 : 1;
  }
  return { flags: args.slice(0, i), command: args.slice(args[i] === "--" ? i + 1 : i) };
}

async function main(args: string[]): Promise<number> {
  const { flags, command } = splitArgs(args);
  let values;
  try {
    ({ values } = parseArgs({ args: flags, options: OPTIONS, strict: true }));
  } catch (e) {
    console.error(`lab: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const timeoutSeconds = Number(values.timeout);
  if (!(timeoutSeconds > 0)) {
    console.error(`lab: bad --timeout "${values.timeout}": give a number of seconds`);
    return 2;
  }
  if (command.length === 0) {
    console.error(`lab: no command given\n\n${USAGE}`);
    return 2;
  }
  const servers = Number(values.servers);
  try {
    checkServers(servers);
    parseLinks(values.link ?? [], servers);
  } catch (e) {
    console.error(`lab: ${(e as Error).message}`);
    return 2;
  }
  const ac = new AbortController();
  const abort = () => ac.abort();
  Deno.addSignalListener("SIGINT", abort);
  Deno.addSignalListener("SIGTERM", abort);
  try {
    const result = await runInLab({
      command: command.length === 1 ? command[0] : command,
      links: values.link,
      servers,
      timeoutSeconds,
      memory: values.memory,
      keep: values.keep,
      signal: ac.signal,
    });
    if (result.timedOut) console.error(`lab: timed out after ${timeoutSeconds} s`);
    return result.code;
  } catch (e) {
    if (!(e instanceof LabError)) throw e;
    console.error(`lab: ${e.message}`);
    return 125;
  } finally {
    Deno.removeSignalListener("SIGINT", abort);
    Deno.removeSignalListener("SIGTERM", abort);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
