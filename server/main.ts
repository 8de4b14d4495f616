/**
 * `deno task server`: serve a directory over an SCTP association with flow
 * scheduling.
 *
 * @module
 */

import { ConfigError, helpText, parseOptions } from "../cli/options.ts";
import { SERVER_OPTIONS } from "./config.ts";
import { startServer } from "./server.ts";
import type { PolicyName } from "./policies/mod.ts";
import type { DataPath, StreamScheduler } from "../transport/types.ts";
import type { ServerTransport } from "./transports.ts";
import type { LogLevel } from "../cli/log.ts";

const USAGE = "Usage: deno task server [options]\n\n" +
  "Serves static files over one association per client, scheduling responses across streams;\n" +
  "with --transport tcp, as plain HTTP/1.1 over TCP through the same scheduler.";

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, SERVER_OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, SERVER_OPTIONS));
      Deno.exit(0);
    }
    const { noKeepAlive, ...values } = parsed.values;
    const server = await startServer({
      ...values,
      keepAlive: !noKeepAlive,
      transport: values.transport as ServerTransport,
      policy: values.policy as PolicyName,
      streamScheduler: values.streamScheduler as StreamScheduler,
      dataPath: values.dataPath as DataPath,
      logLevel: values.logLevel as LogLevel,
    });
    const stop = async () => {
      await server.close();
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch (error) {
    console.error(`server: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError ? 2 : 1);
  }
}
