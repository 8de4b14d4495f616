/**
 * `deno task proxy`: the HTTP/1.1-over-TCP door to a flowsched server, with a
 * shared tmpfs cache and HTML prefetch.
 *
 * @module
 */

import { ConfigError, helpText, parseOptions } from "../cli/options.ts";
import type { LogLevel } from "../cli/log.ts";
import type { DataPath } from "../transport/types.ts";
import { PROXY_OPTIONS } from "./config.ts";
import type { ProxyOptions } from "./proxy.ts";
import { startProxyThreads } from "./threads.ts";

const USAGE = `Usage: deno task proxy [options]

Accepts HTTP/1.1 over TCP and forwards requests over one SCTP association with
N streams to a flowsched server. Given several servers of one site (--upstream
repeated), it keeps one association to each and sends each path to one of
them: the same one while it is up, another while it is down. Bodies are cached
in a directory (a tmpfs by default; several proxies may share it), and the
embedded resources of every HTML page are prefetched as one batch.
GET /_flowsched/stats answers counters (to loopback clients unless
--stats-access says otherwise).

Example:
  deno task proxy --listen 127.0.0.1:8080 --upstream usrsctp://127.0.0.1:9000 \\
    --cache /dev/shm/flowsched-cache
  deno task proxy --upstream kernel://10.0.0.2:9000 --upstream kernel://10.0.0.3:9000`;

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, PROXY_OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, PROXY_OPTIONS));
      Deno.exit(0);
    }
    const { threads, ...values } = parsed.values;
    const proxy = await startProxyThreads({
      ...values,
      prefetch: !values.noPrefetch,
      dataPath: values.dataPath as DataPath,
      logLevel: values.logLevel as LogLevel,
      statsAccess: values.statsAccess as ProxyOptions["statsAccess"],
    }, threads);
    const stop = async () => {
      await proxy.close();
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch (error) {
    console.error(`proxy: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError || error instanceof TypeError ? 2 : 1);
  }
}
