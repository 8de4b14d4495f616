/**
 * The flow-scheduling server: accepts associations and serves each with a
 * `Session` (receiver, scheduler, one sender Worker per stream).
 *
 * @example
 * ```ts
 * const server = await startServer({ transport: "usrsctp", port: 9000, root: "./site", policy: "scf" });
 * // ... later
 * await server.close();
 * ```
 *
 * @module
 */

import { listen } from "../transport/association.ts";
import type { AssociationOptions, Listener, TransportName } from "../transport/types.ts";
import { realRoot } from "./files.ts";
import { createLogger, type LogLevel } from "./log.ts";
import { MappingCache } from "./mapping_cache.ts";
import type { PolicyName } from "./policies/mod.ts";
import { Session } from "./session.ts";

/** Server options; every field has a default. */
export interface ServerOptions extends AssociationOptions {
  /** @default "usrsctp" */
  transport?: TransportName;
  /** Address to listen on. @default "127.0.0.1" */
  host?: string;
  /** Port to listen on (0: any free port, see `FlowServer.port`). @default 9000 */
  port?: number;
  /** Document root. @default "." */
  root?: string;
  /** Scheduling policy. @default "scf" */
  policy?: PolicyName;
  /** Largest body message in bytes. @default 65536 */
  chunkSize?: number;
  /** Body bytes per run; cancellation takes effect between runs. @default 1048576 */
  runBytes?: number;
  /** Idle file mappings kept for reuse. @default 256 */
  mappingCacheSize?: number;
  /** @default "info" */
  logLevel?: LogLevel;
  /** Keep each session's scheduler event log (tests). @default false */
  eventLog?: boolean;
  /** Start each session's scheduler held until `release()` (tests). @default false */
  held?: boolean;
}

/** A running server. */
export interface FlowServer extends AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** Sessions currently being served. */
  readonly sessions: ReadonlySet<Session>;
  /** File mappings currently held. */
  readonly mappings: MappingCache;
  /** Stops accepting, ends every session, unmaps every file. */
  close(): Promise<void>;
}

/** Starts a server and returns once it listens. */
export async function startServer(options: ServerOptions = {}): Promise<FlowServer> {
  const transport = options.transport ?? "usrsctp";
  const log = createLogger(options.logLevel ?? "info", "server");
  const root = await realRoot(options.root ?? ".");
  const mappings = new MappingCache(options.mappingCacheSize ?? 256);
  const listener: Listener = listen(
    transport,
    options.host ?? "127.0.0.1",
    options.port ?? 9000,
    options,
  );
  const sessions = new Set<Session>();
  log.info("listening", {
    transport,
    host: options.host ?? "127.0.0.1",
    port: listener.port,
    root,
    policy: options.policy ?? "scf",
  });

  const accepting = (async () => {
    for await (const association of listener) {
      const session = new Session(association, {
        root,
        policy: options.policy ?? "scf",
        chunkSize: options.chunkSize ?? 65536,
        runBytes: options.runBytes ?? 1024 * 1024,
        mappings,
        log,
        eventLog: options.eventLog,
        held: options.held,
      });
      sessions.add(session);
      log.debug("association accepted", { streams: association.outboundStreams });
      session.done
        .catch((error) => log.error("session ended with an error", { error: String(error) }))
        .finally(() => sessions.delete(session));
    }
  })();

  let closing: Promise<void> | undefined;
  const server: FlowServer = {
    port: listener.port,
    sessions,
    mappings,
    close() {
      closing ??= (async () => {
        await listener.close();
        await accepting;
        await Promise.all([...sessions].map((session) => session.abort()));
        mappings.clear();
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}
